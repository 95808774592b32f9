"""How the console shows runs to a person: waiting steps with their full change.

Kept apart from starter/cli.py so the commands' data sources and their rendering can
change independently.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from handrail.shown import YOU, one_line
from starter.output import shown as shown_markup
from starter.tables import print_record

if TYPE_CHECKING:
    from handrail.gate.models import Change


def describe_change(change: Change) -> str:
    """The whole change: kind, target and every parameter (a batch says it is one). Plain text,
    one line per part: a target or parameter from outside cannot break a line of its own."""
    params = ", ".join(f"{one_line(k)}={one_line(v)}" for k, v in change.params.items() if k not in ("except",))
    return f"{change.kind} {one_line(change.target)}" + (f"\n({params})" if params else "")


def deadline(row: dict[str, Any], policy) -> str | None:
    """Until when the step waits, from the policy: timeout, plus the escalation window once escalated."""
    if not row.get("waiting_since") or policy is None:
        return None
    try:
        gate = policy.gate_policy(row["action"])
    except Exception:
        return None
    since = datetime.fromisoformat(row["waiting_since"])
    seconds = gate.approval_timeout_s + (gate.escalation_timeout_s if row.get("escalated") else 0)
    then = since + timedelta(seconds=seconds)
    return f"{then:%Y-%m-%d %H:%M}Z, then {what_then(row, policy, gate)}"


def what_then(row: dict[str, Any], policy, gate) -> str:
    """What happens at the deadline, as the run will do it (and as the approvers' notice says):
    an escalation first when the policy has one and the step has not escalated yet; then the
    policy's on_timeout, except for the exfiltration question, which the runbook's
    on_unclassified_timeout decides (its on_timeout must stay deny)."""
    group = gate.escalate_to
    if not row.get("escalated") and (group.users or group.roles):
        who = ", ".join([f"role {r}" for r in group.roles] + [f"user {u}" for u in group.users])
        return f"it escalates to {who}"
    from handrail.runbooks.exfiltration import CLASSIFY_KIND, SettingsError, parse_settings

    if row.get("action") == CLASSIFY_KIND:
        try:
            verdict = parse_settings(policy.settings).on_unclassified_timeout
        except SettingsError:
            return gate.on_timeout
        return f"{verdict} (settings.exfiltration.on_unclassified_timeout)"
    return gate.on_timeout


def enrich_pending(rows: list[dict[str, Any]], settings) -> list[dict[str, Any]]:
    """Add what an approver needs beyond the run's row: the deadline and a batch's members."""
    from handrail.gate.models import Change
    from handrail.gate.policy import load_policy
    from starter.batch_view import batch_facts

    try:
        policy = load_policy(settings.policy_path)
    except Exception:
        policy = None
    for row in rows:
        row["until"] = deadline(row, policy)
        change = row.get("change")
        if change is not None:
            row["batch"] = batch_facts(Change.model_validate(change), settings)
    return rows


def print_pending(console: Console, rows: list[dict[str, Any]]) -> None:
    """One record per waiting step, the run id whole on the first line, then the exact commands."""
    from handrail.gate.models import Change
    from starter.batch_view import describe_batch

    headers = ["run", "step", "requested by", "approvals", "change", "for", "why", "deciders", "until"]
    for r in rows:
        change = Change.model_validate(r["change"]) if r.get("change") else Change(kind=r["action"],
                                                                                    target=r["target"])
        if r.get("batch") is not None or change.target.startswith("set:"):
            shown = describe_batch(change, r.get("batch"), r["run_id"])
        else:
            shown = describe_change(change)
        approvals = r["approvals"] + (" (escalated)" if r.get("escalated") else "")
        print_record(console, headers, [shown_markup(r["run_id"]), shown_markup(r["step"]),
                                        shown_markup(r["requested_by"]), approvals, escape(shown),
                                        lasting(r.get("expires_after_s")), shown_markup(r["why"]),
                                        shown_markup(deciders_text(r.get("deciders"))),
                                        r.get("until") or ""])
        console.print(f"  [dim]approve:[/] handrail approve {shown_markup(r['run_id'])} --as {YOU}", soft_wrap=True,
                      highlight=False)
        console.print(f"  [dim]deny:[/]    handrail deny {shown_markup(r['run_id'])} --as {YOU} --reason \"...\"",
                      soft_wrap=True, highlight=False)


def deciders_text(deciders: list[str] | None) -> str:
    """Who may decide a waiting step now; a step nobody may decide says so (it can only escalate
    or time out, as its deadline says) rather than wait in silence."""
    if deciders is None:
        return ""
    if deciders:
        return ", ".join(deciders)
    return ("nobody may decide it now: every approver the policy names for it requested the run, "
            "started it or is excluded from it")


def lasting(expires_after_s: float | None) -> str:
    """How long an approved change stays: its TTL, or until someone rolls it back."""
    if not expires_after_s:
        return "until rolled back (no TTL)"
    return f"{duration_text(expires_after_s)} once applied, then undone (TTL)"


def duration_text(seconds: float) -> str:
    """``2m``, ``1h30m``, ``30d``: the policy's own duration spelling, largest units first."""
    left, parts = round(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"


def change_text(change: Change, settings, run_id: str) -> str:
    """A step's change as `show` prints it: a batch with its members, anything else whole."""
    if change.target.startswith("set:"):
        from starter.batch_view import batch_facts, describe_batch

        return describe_batch(change, batch_facts(change, settings), run_id)
    return describe_change(change)


def members_page(status, settings, page: int, per_page: int) -> dict[str, Any]:
    """One page of every batch step's members (`handrail show RUN --members`)."""
    from starter.batch_view import batch_members

    steps = []
    for step in status.steps:
        members = batch_members(step.change, settings)
        if members is None:
            continue
        start = (page - 1) * per_page
        steps.append({"step": step.step_id, "kind": step.change.kind, "target": step.change.target,
                      "count": len(members), "page": page, "pages": max(1, -(-len(members) // per_page)),
                      "members": members[start:start + per_page]})
    return {"run_id": status.run_id, "steps": steps}


def print_members(console: Console, doc: dict[str, Any]) -> None:
    if not doc["steps"]:
        console.print(f"Run {doc['run_id']} has no batch steps (only `set:` targets have members).")
        return
    for step in doc["steps"]:
        console.print(f"[bold]{shown_markup(step['step'])}[/] {step['kind']}: {step['count']} members, "
                      f"page {step['page']} of {step['pages']}", highlight=False)
        for member in step["members"]:
            console.print(f"  {shown_markup(member)}", highlight=False)
        if step["page"] < step["pages"]:
            console.print(f"next: handrail show {doc['run_id']} --members --page {step['page'] + 1}",
                          soft_wrap=True, highlight=False)


def with_batches(status, settings) -> dict[str, Any]:
    """`show --json`: the status, each batch step with its count, first members and comparison."""
    from starter.batch_view import batch_facts

    doc = status.model_dump(mode="json")
    for step, shown in zip(status.steps, doc["steps"], strict=True):
        if step.change.target.startswith("set:"):
            shown["batch"] = batch_facts(step.change, settings)
    return doc
