"""The trust ladder from evidence: advise promotions and demotions, and change a kind's mode.

`advise` reads, per action kind, the history since the kind entered its current mode (the
last audited `trust.mode_changed`, and only changes made in that mode) and suggests:
- promote (`approve` -> `logged` -> `guarded`) once the history is long and clean: enough
  days and changes, no rollbacks, no overrides, few denials;
- demote one rung when overrides (automated changes a human undid) exceed a rate;
- keep otherwise, saying what is missing. Pinned kinds are never suggested for promotion.

`set_mode` edits the policy file in place: only the `mode = "…"` line of the kind's table
changes (it is added after the table header if absent), everything else stays byte for
byte; the result is validated and compared with the original before an atomic rename,
and the change is audited as `trust.mode_changed`.

Rules live in the policy under `[settings.trust]`:

    [settings.trust]
    promote_after_days = 14        # days of history in the current mode
    promote_after_changes = 50     # changes in the current mode
    promote_max_deny_rate = 0.05   # approve -> logged: denied / decided approvals
    demote_override_rate = 0.05    # overrides / changes in the current mode
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
import uuid
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handrail.gate.ledger import Ledger, iso
from handrail.gate.models import AuditEvent, Mode
from handrail.gate.policy import Policy, PolicyError, parse_policy
from handrail.trust import attest
from handrail.trust.baseline import (
    Approvals,
    GuardrailFigures,
    _approvals,
    _guardrails,
    _overrides,
    _reverts,
)

LADDER = [Mode.APPROVE, Mode.LOGGED, Mode.GUARDED]
TRUST_RUN_ID = "trust"


class TrustError(ValueError):
    """A trust change was refused; the message is one sentence."""


class TrustSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    promote_after_days: float = Field(default=14, ge=0)
    promote_after_changes: int = Field(default=50, ge=0)
    promote_max_deny_rate: float = Field(default=0.05, ge=0, le=1)
    demote_override_rate: float = Field(default=0.05, ge=0, le=1)
    # the minimum sample before a demotion: one test rollback in an hour is no evidence
    demote_after_changes: int = Field(default=20, ge=0)
    demote_after_days: float = Field(default=1, ge=0)


def trust_settings(policy: Policy) -> TrustSettings:
    try:
        return TrustSettings.model_validate(policy.settings.get("trust", {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise PolicyError(f"settings.trust.{where}: {err['msg']}.") from None


class Evidence(BaseModel):
    since: datetime | None = None  # when the kind entered its mode (audited), if known
    first_at: datetime | None = None  # first change in the current mode
    days: float = 0.0
    changes: int = 0
    rollbacks: int = 0
    overrides: int = 0
    override_rate: float = 0.0
    approvals: Approvals = Field(default_factory=Approvals)
    deny_rate: float = 0.0
    guardrails: GuardrailFigures = Field(default_factory=GuardrailFigures)


class Advice(BaseModel):
    kind: str
    mode: Mode
    pinned: bool = False
    suggestion: Literal["promote", "demote", "keep"]
    to: Mode | None = None
    why: str
    evidence: Evidence


def mode_starts(ledger: Ledger) -> dict[str, tuple[datetime, str]]:
    """Per kind, the last audited mode change: (when, the mode it moved to)."""
    out: dict[str, tuple[datetime, str]] = {}
    for at, body in ledger.query("TRUST_MODE_CHANGES"):
        data = json.loads(body).get("data", {})
        out[data.get("kind", "")] = (datetime.fromisoformat(at), data.get("to", ""))
    return out


def known_kinds(ledger: Ledger, policy: Policy) -> list[str]:
    seen = {k for (k,) in ledger.query("TRUST_KNOWN_KINDS")}
    return sorted(seen | set(policy.actions))


def evidence_for(ledger: Ledger, kind: str, mode: Mode, now: datetime, since: datetime | None = None,
                 shared: tuple[dict, dict, dict, dict] | None = None) -> Evidence:
    """The history of `kind` in `mode`, from `since` (when it entered the mode) to `now`.

    `shared` is (approvals, guardrails, reverts, overrides) over all history up to `now`, computed once
    for every kind without an audited mode change (those scans are the costly part).
    """
    lo, hi = iso(since) if since else "", iso(now)
    count, first = ledger.query("TRUST_EVIDENCE", [kind, lo, hi, mode.value])[0]
    ev = Evidence(since=since, changes=count)
    if first:
        ev.first_at = datetime.fromisoformat(first)
        ev.days = round((now - ev.first_at).total_seconds() / 86400, 2)
    if shared is not None and since is None:
        approvals, rails, reverts, overrides = shared
    else:
        approvals, rails = _approvals(ledger, lo, hi, [kind]), _guardrails(ledger, lo, hi, [kind])
        reverts, overrides = _reverts(ledger, lo, hi, [kind]), _overrides(ledger, lo, hi, [kind])
    ev.rollbacks = reverts.get((kind, mode.value), {}).get("rollback", 0)
    ev.overrides = overrides.get((kind, mode.value), 0)
    ev.override_rate = round(ev.overrides / count, 4) if count else 0.0
    ev.approvals = approvals.get(kind, Approvals())
    decided = ev.approvals.approved + ev.approvals.denied
    ev.deny_rate = round(ev.approvals.denied / decided, 4) if decided else 0.0
    ev.guardrails = rails.get(kind, GuardrailFigures())
    return ev


def _pct(rate: float) -> str:
    return f"{rate * 100:.3g}%"


def judge(kind: str, mode: Mode, pinned: bool, has_guardrails: bool, ev: Evidence, rules: TrustSettings) -> Advice:
    """The suggestion for one kind, from its evidence. Pure."""

    def advice(suggestion, why, to=None) -> Advice:
        return Advice(kind=kind, mode=mode, pinned=pinned, suggestion=suggestion, to=to, why=why, evidence=ev)

    rung = LADDER.index(mode)
    if mode != Mode.APPROVE and ev.changes and ev.override_rate > rules.demote_override_rate:
        if ev.changes < rules.demote_after_changes or ev.days < rules.demote_after_days:
            return advice("keep", f"{ev.overrides} of {ev.changes} changes in mode {mode.value} were overridden, "
                          f"but {ev.changes} changes over {ev.days:g} days is too small a sample to demote "
                          f"(needs {rules.demote_after_changes} changes and {rules.demote_after_days:g} days)")
        return advice("demote", f"{ev.overrides} of {ev.changes} changes in mode {mode.value} were overridden "
                      f"({_pct(ev.override_rate)}, above {_pct(rules.demote_override_rate)})", LADDER[rung - 1])
    if pinned:
        return advice("keep", "pinned to approve in the policy; never promoted")
    if mode == Mode.GUARDED:
        return advice("keep", "already at the top of the ladder (guarded)")
    missing = []
    if ev.days < rules.promote_after_days:
        missing.append(f"{ev.days:g} of {rules.promote_after_days:g} days of history in mode {mode.value}")
    if ev.changes < rules.promote_after_changes:
        missing.append(f"{ev.changes} of {rules.promote_after_changes} changes")
    if ev.rollbacks:
        missing.append(f"{ev.rollbacks} rollback(s)")
    if ev.overrides:
        missing.append(f"{ev.overrides} override(s)")
    if mode == Mode.APPROVE and ev.deny_rate > rules.promote_max_deny_rate:
        missing.append(f"approvers denied {_pct(ev.deny_rate)} (at most {_pct(rules.promote_max_deny_rate)})")
    target = LADDER[rung + 1]
    if target == Mode.GUARDED and not has_guardrails:
        missing.append("no guardrails are configured for guarded mode")
    if missing:
        return advice("keep", "not yet: " + "; ".join(missing))
    return advice("promote", f"{ev.changes} changes over {ev.days:g} days in mode {mode.value} with no "
                  f"rollbacks or overrides" + (f", {_pct(ev.deny_rate)} denied" if mode == Mode.APPROVE else ""),
                  target)


def advise(ledger: Ledger, policy: Policy, now: datetime, kinds: list[str] | None = None) -> list[Advice]:
    rules = trust_settings(policy)
    starts = mode_starts(ledger)
    out = []
    plan = []
    for kind in kinds or known_kinds(ledger, policy):
        gate = policy.gate_policy(kind)
        start = starts.get(kind)
        plan.append((kind, gate, start[0] if start and start[1] == gate.mode.value else None))
    shared = None
    if any(since is None for _, _, since in plan):
        wanted = [kind for kind, _, since in plan if since is None]
        hi = iso(now)
        shared = (_approvals(ledger, "", hi, wanted), _guardrails(ledger, "", hi, wanted),
                  _reverts(ledger, "", hi, wanted), _overrides(ledger, "", hi, wanted))
    for kind, gate, since in plan:
        ev = evidence_for(ledger, kind, gate.mode, now, since, shared)
        out.append(judge(kind, gate.mode, gate.pinned, bool(policy.guardrails_for(kind)), ev, rules))
    return out


# -- trust set: edit one line of the policy --------------------------------------------------
_HEADER = re.compile(r"^[ \t]*\[[^\[\]]*\][ \t]*(#.*)?$|^[ \t]*\[\[[^\[\]]*\]\][ \t]*(#.*)?$")
_MODE_LINE = re.compile(r"^([ \t]*mode[ \t]*=[ \t]*)(\"[^\"\n]*\"|'[^'\n]*')")


def _action_header(kind: str) -> re.Pattern[str]:
    name = re.escape(kind)
    bare = name if re.fullmatch(r"[A-Za-z0-9_-]+", kind) else r"(?!x)x"
    return re.compile(rf"^[ \t]*\[[ \t]*actions[ \t]*\.[ \t]*(\"{name}\"|'{name}'|{bare})[ \t]*\][ \t]*(#.*)?$")


def edit_mode_text(text: str, kind: str, mode: Mode | str) -> str:
    """The policy text with `[actions."KIND"]` set to `mode`; every other byte unchanged."""
    mode = Mode(mode)
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    header = _action_header(kind)
    start = next((i for i, line in enumerate(lines) if header.match(line.rstrip("\r\n"))), None)
    if start is None:
        tail = "" if not text or text.endswith("\n") else newline
        return f'{text}{tail}{newline}[actions."{kind}"]{newline}mode = "{mode.value}"{newline}'
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i].rstrip("\r\n"))), len(lines))
    for i in range(start + 1, end):
        match = _MODE_LINE.match(lines[i])
        if match:
            lines[i] = match.group(1) + f'"{mode.value}"' + lines[i][match.end():]
            return "".join(lines)
    if not lines[start].endswith("\n"):
        lines[start] += newline
    lines.insert(start + 1, f'mode = "{mode.value}"{newline}')
    return "".join(lines)


def _same_except_mode(old: str, new: str, kind: str, mode: Mode) -> bool:
    before, after = tomllib.loads(old), tomllib.loads(new)
    before.setdefault("actions", {}).setdefault(kind, {})["mode"] = mode.value
    return before == after


class ModeChange(BaseModel):
    kind: str
    changed: bool
    from_mode: Mode = Field(serialization_alias="from")
    to: Mode
    by: str
    reason: str
    policy: str
    audit_id: str | None = None


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def set_mode(policy_path: Path, ledger: Ledger, kind: str, mode: str, by: str, reason: str,
             now: datetime, *, sign: attest.Signer) -> ModeChange:
    """Change a kind's trust mode in the policy file and audit it; refuse with one sentence.

    `by` is the policy user whose key `sign` signs with (the CLI proves it); they must be
    trusted with the decision (:func:`handrail.trust.attest.check_authority`), and the
    audit event carries their signature."""
    path = Path(policy_path).resolve()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(f"Policy file {path} does not exist (set HANDRAIL_POLICY).") from None
    text = raw.decode("utf-8")
    policy = parse_policy(text, source=str(path))
    try:
        wanted = Mode(mode)
    except ValueError:
        raise TrustError(f"{mode!r} is not a trust mode (use approve, logged or guarded).") from None
    if by not in policy.users:
        raise TrustError(f"{by!r} is not a user in the policy, so cannot change trust modes.")
    if not reason.strip():
        raise TrustError("--reason must say why the trust mode changes (it is kept in the audit).")
    if kind not in policy.actions and not ledger.query("TRUST_KIND_SEEN", [kind]):
        raise TrustError(f"{kind!r} is neither an action kind in the policy nor one the ledger has seen.")
    gate = policy.gate_policy(kind)
    if gate.pinned:
        raise TrustError(f"{kind} is pinned to approve in the policy and cannot change mode.")
    try:
        attest.check_authority(policy, by, kind)
    except attest.AttestError as exc:
        raise TrustError(str(exc)) from None
    result = ModeChange(kind=kind, changed=False, from_mode=gate.mode, to=wanted, by=by, reason=reason,
                        policy=str(path))
    if gate.mode == wanted:
        return result
    new_text = edit_mode_text(text, kind, wanted)
    new_policy = parse_policy(new_text, source=f"{path} after setting {kind} to {wanted.value}")
    if new_policy.gate_policy(kind).mode != wanted or not _same_except_mode(text, new_text, kind, wanted):
        raise TrustError(f"The policy's [actions.\"{kind}\"] table is laid out in a way this command cannot "
                         "edit safely; change its mode by hand.")
    data = {"kind": kind, "from": gate.mode.value, "to": wanted.value, "by": by, "reason": reason,
            "policy": str(path), "at": iso(now)}
    try:
        data = attest.sign_event(policy, by, "trust.mode_changed", data, sign)
    except attest.AttestError as exc:
        raise TrustError(str(exc)) from None
    _write_atomic(path, new_text.encode("utf-8"))
    event = AuditEvent(id=f"trust:{uuid.uuid4().hex}", at=now, run_id=TRUST_RUN_ID, event="trust.mode_changed",
                       data=data)
    try:
        ledger.append([event])
    except BaseException:
        _write_atomic(path, raw)  # unaudited changes do not stay
        raise
    result.changed, result.audit_id = True, event.id
    return result
