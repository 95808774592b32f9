"""Who may decide a waiting step, checked inside the workflow against the step's policy.

Decisions arrive as signals, so they are durable even while no worker runs; each one is
judged here, deterministically, against the `GatePolicy` snapshot the step was opened
with. Every decision, accepted or rejected, is kept (the `status` query shows both) and
audited. Rules: the approver must be a policy user allowed by user or role (the escalation
group too, once escalated); the run's requester never decides their own run; one person
counts once toward N-of-M; one accepted denial ends the step.

A decision counts only when it is signed (handrail.gate.decisions): the signature must
verify against a key the step's policy snapshot lists for the claimed user, name this run,
the waiting step and its change digest, carry a nonce unused in the run, and be inside its
validity window (workflow time). Every rule above then applies to the *verified* signer.

A decision naming a step that has not opened yet (the run is still gathering facts) is
kept, not dropped: it is judged by the same rules when that step opens (issue 15, item 6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from handrail.gate import decisions
from handrail.gate.models import Decision, DecisionRecord, GatePolicy, RunStatus, StepRecord, StepState


@dataclass
class Outcome:
    approved: bool
    timed_out: bool
    deciders: list[str]
    reason: str = ""


@dataclass
class _OpenStep:
    step: StepRecord
    policy: GatePolicy
    approvals: list[str] = field(default_factory=list)
    denial: DecisionRecord | None = None
    escalated: bool = False
    excluded: tuple[str, ...] = ()


KEPT_WHY = "no step is waiting yet; your decision is kept until one is"


def may_decide(who: str, policy: GatePolicy, escalated: bool) -> bool:
    """The gate's one rule of who may decide a step: a user or role of its approvers, and of
    its escalation group once escalated (notices and trust acts ask the same)."""
    groups = [policy.approvers] + ([policy.escalate_to] if escalated else [])
    roles = set(policy.user_roles.get(who, []))
    return any(who in g.users or roles & set(g.roles) for g in groups)


class ApprovalBook:
    def __init__(self) -> None:
        self.status: RunStatus | None = None
        self._open: dict[str, _OpenStep] = {}
        self._events: list[tuple[str, str | None, dict[str, Any]]] = []
        self._closed: set[str] = set()
        self._early: list[DecisionRecord] = []  # decisions for steps that have not opened yet
        self._nonces: set[str] = set()
        # The run's starter (`summary["started_by"]`, a guardrail runbook started by hand) may
        # not decide it; the workflow sets this for runs that waited before that rule (patched:
        # they replay the decisions their starter made, as the gate then accepted them).
        self.starter_may_decide = False

    # -- called by the gate ------------------------------------------------------------
    def open(self, step: StepRecord, policy: GatePolicy, excluded: tuple[str, ...] = ()) -> None:
        """Start taking decisions for a step; `excluded` people may never decide it (they made the change)."""
        self._open[step.step_id] = _OpenStep(step, policy, excluded=tuple(excluded))
        self._judge_kept(step.step_id)

    def escalate(self, step: StepRecord) -> None:
        self._open[step.step_id].escalated = True
        step.escalated = True

    def decided(self, step: StepRecord) -> bool:
        entry = self._open[step.step_id]
        return entry.denial is not None or len(entry.approvals) >= entry.policy.required_approvals

    def close(self, step: StepRecord) -> Outcome:
        entry = self._open.pop(step.step_id)
        self._closed.add(step.step_id)
        if entry.denial is not None:
            d = entry.denial.decision
            return Outcome(False, False, [d.approver], d.reason)
        if len(entry.approvals) >= entry.policy.required_approvals:
            return Outcome(True, False, list(entry.approvals))
        return Outcome(False, True, list(entry.approvals))

    def has_events(self) -> bool:
        return bool(self._events)

    def take_events(self) -> list[tuple[str, str | None, dict[str, Any]]]:
        """Decision events waiting to be audited (the runbook gives them their ids)."""
        events, self._events = self._events, []
        return events

    # -- called by the signal handler --------------------------------------------------
    def receive_payload(self, payload: Any, now: datetime) -> DecisionRecord:
        """Any signal payload (a raw one from the Web UI or `temporal workflow signal` too)."""
        if isinstance(payload, Decision):
            return self.receive(payload, now)
        try:
            decision = Decision.model_validate(payload)
        except ValueError:
            record = DecisionRecord(decision=Decision(id="malformed"), accepted=False, at=now,
                                    why="the decision signal is malformed (it is not a signed decision)")
            if self.status is not None:
                self.status.rejected_decisions.append(record)
            self._events.append(("decision.rejected", None, record.model_dump(mode="json")))
            return record
        return self.receive(decision, now)

    def receive(self, decision: Decision, now: datetime) -> DecisionRecord:
        if self._arrives_early(decision):
            record = DecisionRecord(decision=_bounded(decision), accepted=False, why=KEPT_WHY, at=now)
            self._early.append(record)
            if self.status is not None:
                self.status.kept_decisions.append(record)
            self._events.append(("decision.kept", decision.step, record.model_dump(mode="json")))
            return record
        try:
            entry, document, fingerprint = self._verify(decision, now)
        except decisions.Refused as refused:
            entry, why, fingerprint = None, str(refused), None
        else:  # from here on, the signed document is the decision
            decision = decision.model_copy(update={
                "approver": document.signer, "step": document.step_id,
                "approve": document.decision == "approve", "reason": document.reason})
            entry, why = self._judge(decision)
        decision = _bounded(decision)
        record = DecisionRecord(decision=decision, accepted=entry is not None, why=why, at=now,
                                signer_fingerprint=fingerprint if entry is not None else None)
        if entry is None:
            if self.status is not None:
                self.status.rejected_decisions.append(record)
            self._events.append(("decision.rejected", decision.step, record.model_dump(mode="json")))
            return record
        entry.step.decisions.append(record)
        if decision.approve:
            entry.approvals.append(decision.approver)
        else:
            entry.denial = record
        self._events.append(("decision.accepted", entry.step.step_id, record.model_dump(mode="json")))
        return record

    def _arrives_early(self, decision: Decision) -> bool:
        """A decision naming a later step of this run (`sNN-kind`, NN past the steps started so far)."""
        step = _claimed_step(decision)
        if not step or step in self._open or step in self._closed:
            return False
        number = re.match(r"s(\d+)-\w+\.[\w.]+$", step)  # sNN-<tool>.<action>
        if number is None:
            return False  # not a step id: judged (and refused) as usual
        started = len(self.status.steps) if self.status is not None else 0
        return int(number.group(1)) > started

    def _judge_kept(self, step_id: str) -> None:
        """Judge the decisions kept for a step, in arrival order, now that it waits."""
        kept = [r for r in self._early if r.decision.step == step_id]
        if not kept:
            return
        self._early = [r for r in self._early if r.decision.step != step_id]
        if self.status is not None:
            self.status.kept_decisions = [r for r in self.status.kept_decisions if r.decision.step != step_id]
        for record in kept:
            self.receive(record.decision, record.at)

    def _verify(self, decision: Decision, now: datetime) -> tuple[_OpenStep, decisions.DecisionDocument, str]:
        """The signature checks; raises decisions.Refused with the reason."""
        document = decisions.read_document(decision)
        if self.status is not None and document.run_id != self.status.run_id:
            raise decisions.Refused(f"the signature is for run {document.run_id[:80]}, not {self.status.run_id}")
        entry = self._open.get(document.step_id)
        if entry is None or entry.step.state != StepState.AWAITING_APPROVAL:
            waiting = [e.step.step_id for e in self._open.values() if e.step.state == StepState.AWAITING_APPROVAL]
            now_waiting = f"this run waits on {', '.join(waiting)}" if waiting else "this run waits on no step"
            raise decisions.Refused(f"the signature is for step {document.step_id[:80]}, {now_waiting}")
        fingerprint = decisions.verify_signer(decision, document, entry.policy.user_keys)
        if document.change_digest != entry.step.change_digest:
            raise decisions.Refused(
                f"the signature approves change {document.change_digest[:19]}…, but step {entry.step.step_id} "
                f"would run {entry.step.change_digest[:19]}… "
                "(the change, how long it lasts or its guardrail verdicts differ)")
        if document.nonce in self._nonces:
            raise decisions.Refused("this signed decision was already used in this run (replay)")
        self._nonces.add(document.nonce)
        decisions.check_window(document, now)
        return entry, document, fingerprint

    def _judge(self, decision: Decision) -> tuple[_OpenStep | None, str]:
        entry = self._find(decision.step)
        if entry is None:
            if decision.step:
                return None, f"step {decision.step} is not waiting for a decision"
            return None, "no step of this run is waiting for a decision"
        policy, who = entry.policy, decision.approver
        if who not in policy.user_roles:
            return None, f"{who} is not a user in the policy"
        if self.status is not None and who == self.status.requested_by:
            started_by = self.status.summary.get("started_by")
            if started_by and started_by != who:  # a guardrail runbook: the requester is whom the change is about
                return None, (f"{who} is the person this run is about (started by {started_by}) and cannot "
                              "decide on it (separation of duties)")
            return None, f"{who} requested this run and cannot decide on it (separation of duties)"
        if self.status is not None and not self.starter_may_decide and who == self.status.summary.get("started_by"):
            # a guardrail runbook started by hand: whoever started it does not decide it either
            return None, f"{who} started this run and cannot decide on it (separation of duties)"
        if who in entry.excluded:
            return None, f"{who} made the change under review and cannot decide on it (separation of duties)"
        if who in entry.approvals or (entry.denial and entry.denial.decision.approver == who):
            return None, f"{who} already decided on step {entry.step.step_id}"
        if not self._eligible(who, policy, entry.escalated):
            return None, f"{who} may not decide on {policy.kind} (allowed: {self._allowed(policy, entry.escalated)})"
        if not decision.approve and not decision.reason.strip():
            return None, "a denial needs a reason"
        verb = "approval" if decision.approve else "denial"
        return entry, f"{verb} accepted from {who}"

    def _find(self, step_id: str | None) -> _OpenStep | None:
        if step_id:
            return self._open.get(step_id)
        waiting = [e for e in self._open.values() if e.step.state == StepState.AWAITING_APPROVAL]
        return waiting[0] if len(waiting) == 1 else None

    @staticmethod
    def _eligible(who: str, policy: GatePolicy, escalated: bool) -> bool:
        return may_decide(who, policy, escalated)

    @staticmethod
    def _allowed(policy: GatePolicy, escalated: bool) -> str:
        groups = [policy.approvers] + ([policy.escalate_to] if escalated else [])
        parts = [f"role {r}" for g in groups for r in g.roles] + [f"user {u}" for g in groups for u in g.users]
        return ", ".join(parts) or "nobody"


def _claimed_step(decision: Decision) -> str | None:
    """The step a decision is for: the signed document's, else the field (unsigned: judged and refused)."""
    try:
        return decisions.read_document(decision).step_id
    except decisions.Refused:
        return decision.step


def _bounded(decision: Decision) -> Decision:
    """A hostile signal may carry megabytes; what is kept and audited stays small."""
    if len(decision.document) <= decisions.MAX_DOCUMENT and len(decision.signature) <= decisions.MAX_SIGNATURE \
            and len(decision.reason) <= 2000 and len(decision.approver) <= 200 and len(decision.id) <= 200:
        return decision
    return Decision(id=decision.id[:200], step=(decision.step or "")[:200] or None, approver=decision.approver[:200],
                    approve=decision.approve, reason=decision.reason[:2000], document="", signature="")
