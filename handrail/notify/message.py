"""What an approver is told: the notice and its renderings (text, webhook JSON, e-mail).

A notice names what is asked (the change; for a batch the count and first members), why
(the trust mode or the guardrail that holds it), until when, who may decide, and the exact
commands to approve or deny. It carries no secret and nothing a person could click to
approve: the decision is a signed `handrail approve|deny`, as in Teleport's plugins.

The target, the subject, the reasons and the outcome quote attacker-written text (a phishing
URL, a device name). In the rendered text each is one line (a line break must not forge an
``Approve:`` line), shows controls and bidi overrides as escapes, has no ``scheme://`` a mail
or chat client would turn into a link (``https[:]//``), and is bounded (a chat service cuts
or refuses a long message, and then the approver is told nothing).
"""

from __future__ import annotations

import hashlib
import shlex
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Literal

from pydantic import BaseModel, Field

from handrail.gate.approvals import may_decide
from handrail.gate.models import Change, GatePolicy
from handrail.shown import YOU, inert_links, one_line

Event = Literal["waiting", "escalated", "approved", "denied", "timed_out"]
MAX_NAMED = 5  # commands spelled out per approver in a group message; beyond, `--as YOU`
MAX_SAID = 500  # characters of one quoted value (a target, a reason) in the text

_HEADLINE = {
    "waiting": "waits for your approval",
    "escalated": "still waits for approval (escalated)",
    "approved": "was approved",
    "denied": "was denied",
    "timed_out": "timed out without a decision",
}


class Batch(BaseModel):
    """A `set:<sha256>` target as a person reads it (filled in by the sending activity)."""

    count: int
    first: list[str] = Field(default_factory=list)


class Notice(BaseModel):
    event: Event
    run_id: str
    step_id: str
    runbook: str
    requested_by: str
    subject: str = ""
    change: Change
    why: str
    deadline: datetime | None = None  # until when a decision is taken (waiting, escalated)
    then: str = ""  # what happens at the deadline
    approvers: list[str] = Field(default_factory=list)  # eligible policy users, requester excluded
    required: int = 1
    outcome: str = ""  # approved / denied / timed out: by whom and why
    batch: Batch | None = None

    @property
    def key(self) -> str:
        """Stable per run, step and event: a retried activity sends (and audits) once."""
        return f"{self.run_id}/{self.step_id}/notify-{self.event}"


class NotifyResult(BaseModel):
    sent: list[str] = Field(default_factory=list)  # channel names
    failed: dict[str, str] = Field(default_factory=dict)  # channel name -> one sentence


def eligible_approvers(policy: GatePolicy, escalated: bool, exclude: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Policy users who may decide the step now (approvers, plus the escalation group once escalated)."""
    return sorted(user for user in policy.user_roles if user not in exclude and may_decide(user, policy, escalated))


def approve_command(notice: Notice, user: str = YOU) -> str:
    return " ".join(["handrail", "approve", shlex.quote(notice.run_id), "--step", shlex.quote(notice.step_id),
                     "--as", shlex.quote(user)])


def deny_command(notice: Notice, user: str = YOU) -> str:
    return approve_command(notice, user).replace(" approve ", " deny ", 1) + ' --reason "<why>"'


def show_command(notice: Notice) -> str:
    return f"handrail show {shlex.quote(notice.run_id)}"


def said(value: object, limit: int = MAX_SAID) -> str:
    """A value from outside as notice text: one line, controls escaped, no link, bounded."""
    text = inert_links(one_line(value))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def what(notice: Notice) -> str:
    if notice.batch is None:
        return f"{said(notice.change.kind)} {said(notice.change.target)}"
    first = ", ".join(said(member, 100) for member in notice.batch.first)
    more = notice.batch.count - len(notice.batch.first)
    return (f"{said(notice.change.kind)} of {notice.batch.count} entries: {first}"
            + (f" and {more} more" if more > 0 else "")
            + f" (all: handrail show {shlex.quote(notice.run_id)} --members)")


def headline(notice: Notice) -> str:
    return f"Handrail: {said(notice.change.kind, 100)} in run {said(notice.run_id, 200)} {_HEADLINE[notice.event]}"


def render_text(notice: Notice, recipient: str | None = None) -> str:
    """Plain text: the e-mail body, the lab record, the webhook's `text`."""
    lines = [headline(notice), "", f"Change:   {what(notice)}", f"Run:      {said(notice.runbook)}, requested by "
             f"{said(notice.requested_by)}" + (f" ({said(notice.subject)})" if notice.subject else ""),
             f"Why:      {said(notice.why)}"]
    if notice.event in ("waiting", "escalated"):
        if notice.deadline is not None:
            until = notice.deadline.strftime("%Y-%m-%d %H:%M UTC")
            lines.append(f"Until:    {until}" + (f", then {said(notice.then)}" if notice.then else ""))
        deciders = said(", ".join(notice.approvers)) or "nobody"
        lines.append(f"Deciders: {deciders} ({notice.required} approval(s) needed)")
        lines.append("")
        if recipient is not None:
            lines += [f"Approve:  {approve_command(notice, recipient)}", f"Deny:     {deny_command(notice, recipient)}"]
        else:
            named = notice.approvers[:MAX_NAMED]
            for user in named:
                lines += [f"As {user}:", f"  approve: {approve_command(notice, user)}",
                          f"  deny:    {deny_command(notice, user)}"]
            if len(notice.approvers) > len(named) or not named:
                lines += ["Anyone else allowed:", f"  approve: {approve_command(notice)}",
                          f"  deny:    {deny_command(notice)}"]
        lines.append(f"Inspect:  {show_command(notice)}")
        lines.append("Decisions are signed with your key; this message cannot approve anything.")
    else:
        lines.append(f"Outcome:  {said(notice.outcome)}")
        lines.append(f"Inspect:  {show_command(notice)}")
    return "\n".join(one_line(line) for line in lines)  # the commands too: a quoted id keeps to its line


def webhook_body(notice: Notice) -> dict[str, Any]:
    """JSON that Slack and Teams incoming webhooks accept (`text`), with the structured notice beside it."""
    fields = {
        "event": notice.event, "run_id": notice.run_id, "step_id": notice.step_id, "kind": notice.change.kind,
        "target": notice.change.target, "why": notice.why,
        "deadline": notice.deadline.isoformat() if notice.deadline else None,
        "approvers": notice.approvers, "required": notice.required, "outcome": notice.outcome,
        "batch": notice.batch.model_dump() if notice.batch else None,
    }
    if notice.event in ("waiting", "escalated"):
        fields["approve_command"] = approve_command(notice)
        fields["deny_command"] = deny_command(notice)
    fields["show_command"] = show_command(notice)
    return {"text": _chat_safe(render_text(notice)), "handrail": fields}


def email_message(notice: Notice, sender: str, address: str, recipient: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = address
    message["Subject"] = one_line(headline(notice))[:200]  # no CR/LF: no header of the sender's
    digest = hashlib.sha256(f"{notice.key}/{recipient}".encode()).hexdigest()[:32]
    message["Message-ID"] = f"<{digest}.{notice.event}@handrail>"  # the same on a retry
    message.set_content(render_text(notice, recipient))
    return message


def _chat_safe(text: str) -> str:
    """Slack reads `<!channel>` or `<https://…|label>` in `text` as mentions and links: hostile
    subjects and targets must not page a channel or disguise a link, so `&`, `<`, `>` are escaped
    (Slack's own rule; Teams shows the entities as the characters). Teams reads Markdown, where
    `[Approve here](…)` is a link whose text hides its address: `](` is split so it stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("](", "] (")
