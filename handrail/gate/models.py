"""The data that crosses workflow and activity boundaries.

Every value a workflow hands to an activity (or receives back) is one of these pydantic
models, so the history is typed, replay is stable and nothing travels as a bare dict.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from handrail.gate.limits import AddressText, Identifier, Principal, Reason

Scalar = str | int | float | bool | None


class Mode(StrEnum):
    APPROVE = "approve"
    LOGGED = "logged"
    GUARDED = "guarded"


class Outcome(StrEnum):
    ALLOW = "allow"
    HOLD = "hold"
    DENY = "deny"


class RunState(StrEnum):
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    WAITING_FOR_TOOL = "waiting_for_tool"  # a tool call keeps failing retryably; retrying with backoff
    COMPLETED = "completed"
    DENIED = "denied"
    COMPENSATED = "compensated"
    ROLLED_BACK = "rolled_back"
    NEEDS_ATTENTION = "needs_attention"
    FAILED = "failed"
    REJECTED = "rejected"
    # a rollback run's own outcomes (`rollback-RUN`; handrail.gate.rollback_outcome.rollback_view):
    PARTLY_ROLLED_BACK = "partly_rolled_back"  # some inverses applied, the others' undo denied
    REFUSED = "refused"  # the request was refused (who asked may not roll the run back): nothing ran


class StepState(StrEnum):
    CHECKING = "checking"
    AWAITING_APPROVAL = "awaiting_approval"
    APPLYING = "applying"
    APPLIED = "applied"
    UNCHANGED = "unchanged"  # the tool already was in the wanted state: nothing to undo
    DENIED = "denied"
    FAILED = "failed"
    COMPENSATED = "compensated"
    EXPIRED = "expired"
    COMPENSATION_FAILED = "compensation_failed"
    ROLLED_BACK = "rolled_back"  # undone by `handrail rollback` (shown by `show`; the run's own workflow never sets it)
    # undone for this run, but the tool keeps the state because another run still relies on it
    # (`handrail.gate.holders`): a rollback's or expiry's outcome, shown by `show`
    KEPT = "kept"


class Change(BaseModel):
    """One change to one security tool: what a runbook asks the gate to do.

    `kind` names the action (`firewall.egress_block`); `target` is the thing changed (an
    IP, a domain, a host); `params` carries the rest (a comment, a level).
    """

    kind: str
    target: str
    params: dict[str, Scalar] = Field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.kind} {self.target}"


class Verdict(BaseModel):
    guardrail: str
    outcome: Outcome
    reason: str
    alert: bool = False  # a deny that should wake the SOC (a faulty feed, a protected range)
    threshold: float | None = None
    threshold_source: str | None = None  # where a threshold came from ("static", "baseline p99×1.5")


class Approver(BaseModel):
    users: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)


class GatePolicy(BaseModel):
    """The slice of the policy one step needs, frozen into history when the step starts.

    The workflow checks approvals against this snapshot, so a policy edited while a run
    waits cannot change who may approve the step already asked about.
    """

    kind: str
    mode: Mode
    pinned: bool = False
    approvers: Approver = Field(default_factory=Approver)
    escalate_to: Approver = Field(default_factory=Approver)
    required_approvals: int = 1
    approval_timeout_s: float = 4 * 3600
    escalation_timeout_s: float = 4 * 3600
    on_timeout: Literal["deny", "approve"] = "deny"
    user_roles: dict[str, list[str]] = Field(default_factory=dict)
    alert_priority: str = "P2"
    tool_retry_s: float = 6 * 3600  # a retryable tool failure is retried this long (issue 15)
    tool_alert_after_s: float = 15 * 60  # one alert once the tool has failed this long
    user_keys: dict[str, list[str]] = Field(default_factory=dict)  # SSH public keys per user: decisions are signed


class SetCheck(BaseModel):
    """The member-by-member guardrail check of one ``set:<sha256>`` batch target, made by
    the gate's context activity with the intel guardrails; ``sha256`` binds it to the set."""

    sha256: str
    members: int = 0
    protected_hits: list[str] = Field(default_factory=list)  # "entry: reason", capped
    special_hits: list[str] = Field(default_factory=list)
    allowlist_hits: list[str] = Field(default_factory=list)  # names never_touch refuses
    error: str | None = None  # the set could not be read: the batch is refused


class GuardrailContext(BaseModel):
    """Facts gathered by an activity so that guardrail evaluation can stay pure."""

    protected: list[tuple[str, str]] = Field(default_factory=list)  # (name, cidr)
    allowlist: list[str] = Field(default_factory=list)
    target_tags: list[str] = Field(default_factory=list)
    recent_count_hour: int = 0
    recent_count_run: int = 0
    thresholds: dict[str, float] = Field(default_factory=dict)
    threshold_sources: dict[str, str] = Field(default_factory=dict)
    guardrails: list[dict[str, Any]] = Field(default_factory=list)
    # where the target stands in the top-sites list (`popular_domain`; see runbooks/phishing/popular.py)
    popularity: dict[str, Any] = Field(default_factory=dict)
    set_check: SetCheck | None = None  # for set:<sha256> targets under IP or never_touch guardrails
    freeze: str | None = None  # the reason of the change freeze in force, if any (every change holds)
    # the public-suffix list section ("icann", "private", "reserved") that makes a bare-name
    # target itself a public suffix (`canonical_target`; see handrail/suffixes.py)
    target_suffix: str | None = None


class Decision(BaseModel):
    """An approver's answer, sent as a signal. `id` lets the sender find its verdict.

    Only `document` (the canonical decision document, handrail.gate.decisions) and its SSH
    `signature` count; the other fields are a readable copy that must agree with them.
    They all have defaults so that a raw, unsigned signal still arrives and is rejected.
    """

    id: str = ""
    step: str | None = None
    approver: str = ""
    approve: bool = False
    reason: str = ""
    document: str = ""
    signature: str = ""


class DecisionRecord(BaseModel):
    decision: Decision
    accepted: bool
    why: str
    at: datetime
    signer_fingerprint: str | None = None  # the verified key (SHA256:…), for accepted decisions


class AuditEvent(BaseModel):
    """One line of the audit ledger, created in workflow code with a deterministic id."""

    id: str
    at: datetime
    run_id: str
    step_id: str | None = None
    event: str
    data: dict[str, Any] = Field(default_factory=dict)


class RequesterEvidence(BaseModel):
    """How Temporal says a run was started: with the policy, all a requester proof needs.

    The workflow gathers it (`workflows.requester.requester_evidence`); the proof is
    `handrail.gate.requests.prove_requester`, so the workflow and the gate's check-and-apply
    activity prove a requester with one function.
    """

    workflow: str
    run_id: str
    parent: str | None = None  # the parent workflow's id, for a child run
    schedule: str | None = None  # the Temporal Schedule that started the run, if one did
    memo: Any = None  # the `handrail-request` memo, if any


class ApplyIntent(BaseModel):
    """Asks a step's check to apply the step at once when no person need decide it: one
    activity instead of two. What `apply_change` would be told, known before the check."""

    idempotency_key: str
    requested_by: str
    expires_at: datetime | None = None
    # Set while the run's requester is not yet proven: the check proves it before any change.
    requester: RequesterEvidence | None = None
    claimed_requester: str = ""
    trigger_digest: str | None = None
    started_at: datetime | None = None


class CheckRequest(BaseModel):
    run_id: str
    step_id: str
    change: Change
    audit: list[AuditEvent] = Field(default_factory=list)
    apply: ApplyIntent | None = None  # apply at once when the gate needs no person (see ApplyIntent)


class AlertRequest(BaseModel):
    run_id: str
    priority: str
    title: str
    body: str
    tags: list[str] = Field(default_factory=list)
    idempotency_key: str
    audit: list[AuditEvent] = Field(default_factory=list)


class RunChangesRequest(BaseModel):
    run_id: str


class ApplyRequest(BaseModel):
    run_id: str
    step_id: str
    change: Change
    idempotency_key: str
    mode: Mode
    requested_by: str
    approved_by: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None
    audit: list[AuditEvent] = Field(default_factory=list)


class ChangeRecord(BaseModel):
    """A ledger row: the change with the state it replaced and how to undo it."""

    change_id: str
    run_id: str
    step_id: str
    change: Change
    # pending: written ahead of the tool call (before-state and inverse known); settled by reading
    # the tool to applied, or to not_applied when the tool does not hold the change.
    status: Literal["pending", "applied", "unchanged", "not_applied"] = "pending"
    before: dict[str, Any] | None
    after: dict[str, Any] | None = None
    inverse: Change | None = None
    mode: Mode
    requested_by: str
    approved_by: list[str] = Field(default_factory=list)
    applied_at: datetime
    expires_at: datetime | None = None
    reverted_at: datetime | None = None
    reverted_by: str | None = None
    # the change id whose before-state and inverse this record took over when that change was
    # undone while this one (found "already so") still relied on its state (`handrail.gate.holders`)
    inherited_from: str | None = None

    def why_not_undoable(self) -> str | None:
        """None when undoing this change would run its inverse; otherwise why it is skipped.

        The one rule for rollback plans, on-demand rollback, compensation and expiry: a
        change that found the tool already in the wanted state is never undone (the block
        someone else set stays), nor one already reverted or without an inverse."""
        if self.status == "unchanged":
            return "the tool already was in that state before the run"
        if self.reverted_at is not None:
            return f"already reverted by {self.reverted_by}"
        if self.inverse is None:
            return "nothing to undo"
        return None


class StepCheck(BaseModel):
    """What a step's check returns: the policy slice, the context and the guardrails'
    verdicts on them, from which the workflow judges the step (`handrail.gate.judgement`).

    `decided` when the check was asked to apply (`CheckRequest.apply`) and did what the
    workflow would: judged the step able to go without a person, proved the requester
    (`requester_proof`) and audited both. `record` is then the applied change, or None when
    the tool failed retryably and the workflow carries the change out patiently."""

    policy: GatePolicy
    context: GuardrailContext
    decided: bool = False
    record: ChangeRecord | None = None
    requester_proof: dict[str, Any] | None = None
    # the guardrails' verdicts, evaluated by the check: recorded in the run's history with
    # it, so a run replays with the verdicts it got whatever a later release's guardrails
    # say (None in histories from before: the workflow then evaluates them, as it did)
    verdicts: list[Verdict] | None = None


class RevertRequest(BaseModel):
    change_id: str
    reason: str  # compensation | expiry | rollback
    by: str
    run_id: str
    audit: list[AuditEvent] = Field(default_factory=list)
    expected_inverse: Change | None = None  # a rollback's: the inverse its gate step approved
    # only keep it: when another run holds the state, record the change as kept; otherwise change
    # nothing and say so (a rollback asks this before it sends an inverse through the gate)
    keep_only: bool = False


class RevertResult(BaseModel):
    """What undoing a change came to. `kept`: the tool was left as it is because another run
    still relies on the state (`released`: that run's change undoes it itself; `handed_over`:
    that run's change took over this one's before-state and inverse); `held_by_run` and
    `held_by_change` name it."""

    change_id: str
    reverted: bool
    already: bool = False
    verified: bool = True
    detail: str = ""
    kept: Literal["", "released", "handed_over"] = ""
    held_by_run: str = ""
    held_by_change: str = ""


class StepRecord(BaseModel):
    step_id: str
    change: Change
    state: StepState = StepState.CHECKING
    mode: Mode | None = None
    verdicts: list[Verdict] = Field(default_factory=list)
    thresholds: dict[str, str] = Field(default_factory=dict)  # derived guardrail thresholds used, with source
    change_digest: str = ""  # what a signed decision must name (handrail.gate.decisions.change_digest)
    decisions: list[DecisionRecord] = Field(default_factory=list)
    approvals_needed: int = 0
    escalated: bool = False
    # while the step waits: the policy users who may decide it now (its requester, whoever started
    # a guardrail runbook by hand and excluded deciders left out); [] nobody; None not known
    deciders: list[str] | None = None
    # the TTL the change gets once applied (None: it stays until rolled back); shown to approvers
    # and covered by the change digest, so a signed approval of a 2-minute block is not one of
    # a block for good (set by steps begun since the TTL_IN_DIGEST patch)
    expires_after_s: float | None = None
    change_id: str | None = None
    unchanged: bool = False
    expires_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    note: str = ""


class RollbackNote(BaseModel):
    """Who rolled a run back, when, and as which run (`handrail show` of the rolled-back run)."""

    requested_by: str
    requested_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: str = "running"  # rolled_back | needs_attention | partly_rolled_back | denied | refused | running
    rollback_ids: list[str] = Field(default_factory=list)  # rollback-<run id>, then any -retry-N


class RefusedRequest(BaseModel):
    """A request to roll a run back that was refused (`rollback.refused`): who asked, when, why.
    Each is an execution of the rollback's workflow id that ended at once, having changed nothing."""

    by: str
    at: datetime | None = None
    why: str = ""


class RunStatus(BaseModel):
    run_id: str
    runbook: str
    state: RunState
    requested_by: str
    subject: str
    started_at: datetime
    finished_at: datetime | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    rejected_decisions: list[DecisionRecord] = Field(default_factory=list)
    kept_decisions: list[DecisionRecord] = Field(default_factory=list)  # sent before their step waited
    error: str | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
    live_note: str | None = None  # set when the live status could not be read and this was rebuilt from the ledger
    rollback: RollbackNote | None = None  # set by `show` from the ledger once the run has been rolled back
    # a rollback run (`rollback-RUN`): the requests under its id refused before this one (from the ledger)
    refused_before: list[RefusedRequest] = Field(default_factory=list)

    def pending_step(self) -> StepRecord | None:
        for step in self.steps:
            if step.state == StepState.AWAITING_APPROVAL:
                return step
        return None


class EgressBlockTrigger(BaseModel):
    ip: AddressText
    reason: Reason
    requested_by: Principal
    ttl_s: float | None = None


class RollbackTrigger(BaseModel):
    run_id: Identifier
    requested_by: Principal
