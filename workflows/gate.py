"""The step gate and the saga, as workflow code every runbook shares.

A runbook says what to change; `Runbook.change` decides whether and how:
guardrails -> approval (by trust mode, or because a guardrail holds) -> tool call with an
idempotency key -> ledger record -> compensation pushed on the saga stack -> audit.
A step no person need decide is one activity: its check applies it, judged with the same
pure `handrail.gate.judgement.judge` this workflow uses (see `Runbook.change`).
On failure, cancellation or an aborting denial, `Runbook.__aexit__` undoes the recorded
changes in reverse, and keeps doing so even if a cancel arrives mid-way.

Everything here is deterministic: time from `workflow.now()`, ids from the run and step,
guardrails as pure functions, side effects only through activities.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError

from workflows.notify import ask_and_tell, drain_notices
from workflows.patience import call_patiently

with workflow.unsafe.imports_passed_through():
    from activities.expiry import ExpiryActivities
    from activities.gate import GateActivities
    from handrail.gate.approvals import ApprovalBook
    from handrail.gate.decisions import Refused, change_digest
    from handrail.gate.expiry import ExpiryItem, ExpiryPlan
    from handrail.gate.judgement import judge
    from handrail.gate.models import (
        AlertRequest,
        ApplyIntent,
        ApplyRequest,
        AuditEvent,
        Change,
        ChangeRecord,
        CheckRequest,
        GatePolicy,
        Outcome,
        RevertRequest,
        RevertResult,
        RunState,
        RunStatus,
        StepRecord,
        StepState,
    )
    from handrail.gate.requests import trigger_digest
    from handrail.gate.search import AWAITING_KEY, REQUESTER_KEY, RUNBOOK_KEY, STATE_KEY
    from workflows.requester import prove_requester, requester_evidence



def start_attributes(runbook: str, requested_by: str) -> TypedSearchAttributes:
    """The search attributes a run is started with (`search_attributes=` on start).

    A run started with them needs no upsert for its first state (`Runbook.__aenter__`
    checks); a run started without them (a test, an old starter) still gets them by upsert.
    """
    return TypedSearchAttributes([
        SearchAttributePair(STATE_KEY, RunState.RUNNING.value),
        SearchAttributePair(RUNBOOK_KEY, runbook),
        SearchAttributePair(REQUESTER_KEY, requested_by),
    ])


# One named set of timeouts and retries per kind of activity call.
READ_OPTS = dict(start_to_close_timeout=timedelta(seconds=60), retry_policy=RetryPolicy(maximum_attempts=5))
CHECK_OPTS = dict(start_to_close_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(maximum_attempts=5))
TOOL_OPTS = dict(
    start_to_close_timeout=timedelta(seconds=60),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5),
)
# The gate's audit writes (idempotent: each event has its id). The ledger locked or restarting must
# not end a run an approver already decided: they are retried until it is back, visibly pending.
AUDIT_OPTS = dict(
    start_to_close_timeout=timedelta(seconds=60),  # more than SQLite's 30 s wait for a lock
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1),
                             maximum_attempts=0),
)
# A rollback's undo: a few quick attempts; what still fails leaves the rollback `needs_attention`
# and the next `handrail rollback RUN` retries exactly what is left (a person is watching).
UNDO_OPTS = dict(
    start_to_close_timeout=timedelta(seconds=60),
    heartbeat_timeout=timedelta(seconds=10),  # revert_change heartbeats: a killed worker is noticed in seconds
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10),
                             maximum_attempts=5),
)
# A check asked to apply the step (no person need decide): check and tool call in one activity,
# with a heartbeat like a round of `call_patiently`, so a killed worker is noticed in seconds. Its
# time is the check's 30 s and the apply's 60 s together (an intel batch is sized to the latter).
ONE_TRIP_OPTS = dict(
    start_to_close_timeout=timedelta(seconds=90),
    heartbeat_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5),
)
# A failed check that may have applied makes its step uncertain; runs begun before replay as they ran.
CHECK_MAY_APPLY = "handrail-check-may-apply"
# steps begun since carry their TTL, covered by the change digest (runs begun before replay as they ran)
TTL_IN_DIGEST = "handrail-ttl-in-digest"
# whoever started a guardrail runbook by hand neither decides its steps nor is told to; a run whose
# first waiting step began before keeps the old rule (its starter's approval in its history replays accepted)
STARTER_NOT_DECIDER = "handrail-starter-not-decider"
# a rollback's undo another run still relies on is kept before it is judged or asked about
# (`Runbook._kept`); rollbacks begun before replay as they ran
KEEP_FIRST = "handrail-rollback-keep-first"
COMPENSATE_OPTS = dict(
    start_to_close_timeout=timedelta(seconds=60),
    heartbeat_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=8),
)


class StepDenied(Exception):
    """A step was refused (guardrail, approver or timeout) and the runbook cannot go on."""

    def __init__(self, step: StepRecord, why: str):
        super().__init__(why)
        self.step = step


class Rejected(Exception):
    """The trigger itself is unusable (malformed input): the run ends `rejected`, nothing changed."""


class Runbook:
    """One run's gate, saga and status. Create it with `RunbookWorkflow.runbook(...)`."""

    def __init__(self, book: ApprovalBook, runbook: str, requested_by: str, subject: str, trigger=None):
        info = workflow.info()
        self._trigger_digest = trigger_digest(trigger) if trigger is not None else None
        self._requester_proof: dict | None = None  # how the requester is proven, once the first change asks
        self._claimed_requester = requested_by  # who started the run (a runbook may name another requester later)
        self.run_id = info.workflow_id
        self.book = book
        self.status = RunStatus(
            run_id=self.run_id,
            runbook=runbook,
            state=RunState.RUNNING,
            requested_by=requested_by,
            subject=subject,
            started_at=workflow.now(),
        )
        book.status = self.status
        self._saga: list[tuple[StepRecord, ChangeRecord]] = []
        self._uncertain: list[StepRecord] = []  # failed steps whose tool may hold the change anyway
        self._protective: set[str] = set()
        self._pending_audit: list[AuditEvent] = []
        self._event_seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # set on entering: the run's own loop
        self._last_state: RunState | None = None
        self.undone: dict[str, RevertResult] = {}  # a rollback's results, by the change undone

    # -- audit -------------------------------------------------------------------------
    def audit(self, event: str, step_id: str | None = None, **data) -> None:
        """Queue an audit event; it is written with the next activity, at no extra cost."""
        self._event_seq += 1
        self._pending_audit.append(
            AuditEvent(
                id=f"{self.run_id}:{workflow.info().run_id}:{self._event_seq}",
                at=workflow.now(),
                run_id=self.run_id,
                step_id=step_id,
                event=event,
                data=data,
            )
        )

    def _take_audit(self) -> list[AuditEvent]:
        for name, step_id, data in self.book.take_events():
            self.audit(name, step_id, **data)
        events, self._pending_audit = self._pending_audit, []
        return events

    async def flush_audit(self, *, local: bool = False) -> None:
        """Write the queued audit events now; `local` runs the write in the workflow task itself
        (a local activity: no activity task, no extra round trip), for the run's last write."""
        events = self._take_audit()
        if events and local:
            await workflow.execute_local_activity_method(GateActivities.record_audit, events, **AUDIT_OPTS)
        elif events:
            await workflow.execute_activity_method(GateActivities.record_audit, events, **AUDIT_OPTS)

    # -- state and search attributes ---------------------------------------------------
    def _set_state(self, state: RunState, awaiting: str = "") -> None:
        self.status.state = state
        if self._last_state == state and not awaiting:
            return
        self._last_state = state
        workflow.upsert_search_attributes(
            [STATE_KEY.value_set(state.value), AWAITING_KEY.value_set(awaiting)]
        )

    # -- the saga ----------------------------------------------------------------------
    async def __aenter__(self) -> "Runbook":
        started = workflow.info().typed_search_attributes
        if any(started.get(p.key) != p.value for p in start_attributes(self.status.runbook, self.status.requested_by)):
            workflow.upsert_search_attributes(
                [
                    STATE_KEY.value_set(RunState.RUNNING.value),
                    RUNBOOK_KEY.value_set(self.status.runbook),
                    REQUESTER_KEY.value_set(self.status.requested_by),
                ]
            )
        self._last_state = RunState.RUNNING
        self._loop = asyncio.get_running_loop()  # this run's own event loop (see `_torn_down`)
        self.audit("run.started", runbook=self.status.runbook, requested_by=self.status.requested_by,
                   subject=self.status.subject)
        return self

    def _torn_down(self, exc: BaseException | None) -> bool:
        """Whether this exit is the coroutine being torn down rather than the run ending.

        When a worker drops a run from its cache (eviction, shutdown) and the run's coroutine is
        later garbage-collected, Python throws GeneratorExit into it, synchronously, on whatever
        thread collects it, possibly while *another* run's workflow task is executing there.
        Compensating then would create the undo on that other run's event loop and schedule
        `revert_change` of this run's changes as that run's commands (seen in tests: an
        exfiltration run's history held a rogue-device run's revert, and failed on replay).
        A run that is torn down does nothing: its history, replayed on the next worker, decides.
        """
        if isinstance(exc, GeneratorExit):
            return True
        try:
            return asyncio.get_running_loop() is not self._loop
        except RuntimeError:  # no loop at all: certainly not this run's
            return True

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        if self._torn_down(exc):
            return False
        if exc is None:
            final = RunState.COMPLETED
        elif isinstance(exc, Rejected):
            final, self.status.error = RunState.REJECTED, str(exc)
        elif isinstance(exc, StepDenied):
            final, self.status.error = RunState.DENIED, str(exc)
        elif isinstance(exc, asyncio.CancelledError):
            final, self.status.error = RunState.COMPENSATED, "the run was cancelled"
        else:
            final, self.status.error = RunState.COMPENSATED, _describe_failure(exc)
        undone_uncertain = False
        if exc is not None and self._uncertain:
            failed_uncertain = await self._settle_uncertain_to_the_end()
            undone_uncertain = any(s.state == StepState.COMPENSATED for s in self._uncertain)
            if failed_uncertain:
                final = RunState.NEEDS_ATTENTION
                self.status.error = (self.status.error or "") + (
                    f"; could not tell whether ledger change(s) {', '.join(failed_uncertain)} took effect"
                )
        if exc is not None and self._saga:
            failed = await self._compensate_to_the_end()
            if failed:
                final = RunState.NEEDS_ATTENTION
                self.status.error = (self.status.error or "") + (
                    f"; compensation failed for ledger change(s) {', '.join(failed)}"
                )
        elif exc is not None and final == RunState.COMPENSATED and not undone_uncertain:
            final = RunState.FAILED  # nothing had been changed, so nothing was compensated
        await drain_notices(self)  # the approvers' last notices (only a run whose step waited has any)
        self.status.finished_at = workflow.now()
        self._set_state(final)
        self.audit("run.finished", state=final.value, error=self.status.error,
                   changes=[r.change_id for _, r in self._saga], summary=self.status.summary)
        # A run that ends here writes its last audit in its last workflow task (a local activity);
        # one that lives on for its changes' TTLs keeps the ordinary activity.
        lives_on = final == RunState.COMPLETED and any(s.expires_at for s, _ in self._saga)
        await _keep_awaiting(asyncio.ensure_future(self.flush_audit(local=not lives_on)))
        if final == RunState.COMPLETED:
            await self._keep_time_to_live()
        # The outcome is in the status and the audit; the run itself ends normally so that a
        # failure never turns into a workflow task retried for ever.
        return True

    async def _keep_time_to_live(self) -> None:
        """Hand the changes with a TTL to this run's expiry workflow, then let the run close.

        The run is completed (status, search attribute, audit) and Temporal says so too:
        the durable timers live in `expiry-<run id>` (workflows/expiry.py), started by an
        activity so it is an ordinary top-level workflow that outlives this one.
        """
        expiring = [(s, r) for s, r in self._saga if s.expires_at]
        if not expiring:
            return
        plan = ExpiryPlan(run_id=self.run_id, items=[
            ExpiryItem(step_id=s.step_id, change_id=r.change_id, change=s.change.describe(), expires_at=s.expires_at)
            for s, r in expiring
        ])
        self.status.summary["expiry_workflow"] = await _keep_awaiting(asyncio.ensure_future(
            workflow.execute_activity_method(ExpiryActivities.start_expiry, plan, **CHECK_OPTS)))

    def _needs_attention(self, why: str) -> None:
        self.status.error = f"{self.status.error}; {why}" if self.status.error else why
        self._set_state(RunState.NEEDS_ATTENTION)
        self.audit("run.needs_attention", reason=why)

    async def _compensate_to_the_end(self) -> list[str]:
        """Compensate in a task of its own and await it until done, cancel or not."""
        self.status.summary["compensating"] = True
        return await _keep_awaiting(asyncio.ensure_future(self._compensate()))

    async def _settle_uncertain_to_the_end(self) -> list[str]:
        """Undo failed steps whose tool holds the change after all (a 503 after it accepted)."""
        return await _keep_awaiting(asyncio.ensure_future(self._settle_uncertain()))

    async def _settle_uncertain(self) -> list[str]:
        failed: list[str] = []
        for step in reversed(self._uncertain):
            try:
                result = await workflow.execute_activity_method(
                    GateActivities.revert_change,
                    RevertRequest(change_id=step.change_id, reason="compensation", by="handrail",
                                  run_id=self.run_id, audit=self._take_audit()),
                    **COMPENSATE_OPTS,
                )
            except ActivityError as err:
                failed.append(step.change_id)
                step.note = f"could not tell whether it took effect: {_describe_failure(err)}"
                continue
            if result.reverted:
                step.state = StepState.COMPENSATED
                step.note = "the tool had applied it despite the error; " + result.detail
                self.audit("compensation.settled", step.step_id, change_id=step.change_id, detail=result.detail)
            elif result.kept:  # the tool holds it, and another run relies on it now
                step.note = "the tool had applied it despite the error; " + result.detail
        return failed

    async def _compensate(self) -> list[str]:
        failed: list[str] = []
        for step, record in reversed(self._saga):
            if step.step_id in self._protective:
                self.audit("compensation.skipped", step.step_id, change_id=record.change_id,
                           why="a protective change is kept; roll it back by hand if it was wrong")
                continue
            self.audit("compensation.started", step.step_id, change_id=record.change_id)
            if not await self._revert(step, record, "compensation"):
                failed.append(record.change_id)
        return failed

    async def _revert(self, step: StepRecord, record: ChangeRecord, reason: str) -> bool:
        """Undo one recorded change (compensation or expiry); False if it could not be undone."""
        try:
            result = await workflow.execute_activity_method(
                GateActivities.revert_change,
                RevertRequest(change_id=record.change_id, reason=reason, by="handrail",
                              run_id=self.run_id, audit=self._take_audit()),
                **COMPENSATE_OPTS,
            )
        except ActivityError as err:
            step.state = StepState.COMPENSATION_FAILED
            step.note = f"{reason} failed: {_describe_failure(err)}"
            self.audit(f"{reason}.failed", step.step_id, change_id=record.change_id, error=step.note)
            return False
        if result.reverted or reason == "compensation":
            step.state = StepState.EXPIRED if reason == "expiry" else StepState.COMPENSATED
        step.note = result.detail
        return True

    # -- the gate ----------------------------------------------------------------------
    async def look(self, activity, arg, *, timeout: timedelta | None = None):
        """A read-only activity, called by reference: no gate, no ledger; its audit rides along later."""
        options = dict(READ_OPTS, start_to_close_timeout=timeout) if timeout else READ_OPTS
        return await workflow.execute_activity_method(activity, arg, **options)

    async def record(self, activity, arg, *, what: str, timeout: timedelta | None = None):
        """A write that is not a security change (a case note, collected evidence): no
        guardrail or approval and nothing to undo, but audited like every write."""
        self.audit("record.written", what=what)
        options = dict(TOOL_OPTS, start_to_close_timeout=timeout) if timeout else TOOL_OPTS
        return await workflow.execute_activity_method(activity, arg, **options)

    async def alert(self, priority: str, title: str, body: str, tags: list[str] | None = None) -> None:
        self._event_seq += 1
        key = f"{self.run_id}/alert-{self._event_seq}"
        self.audit("alert.raised", priority=priority, title=title)
        await workflow.execute_activity_method(
            GateActivities.raise_alert,
            AlertRequest(run_id=self.run_id, priority=priority, title=title, body=body, tags=tags or [],
                         idempotency_key=key, audit=self._take_audit()),
            **TOOL_OPTS,
        )

    async def change(
        self,
        change: Change,
        *,
        expires_after: timedelta | None = None,
        abort_on_deny: bool = True,
        protective: bool = False,
        excluded_deciders: tuple[str, ...] = (),
        reverts: ChangeRecord | None = None,
        keep_first: bool = False,
    ) -> StepRecord:
        """Run one change through the gate. Returns the step; raises StepDenied when refused.

        A `protective` change (reverting a rogue privilege, taking a rogue device off the
        network) is never undone by compensation: a failure or a cancel later in the run
        must not hand the attacker back what the run took away. It stays in the ledger with
        its inverse, so a human can still roll it back on purpose.
        `excluded_deciders` may never approve or deny this step (besides the run's requester),
        e.g. the person whose change the step reviews.
        `reverts` makes the step a rollback's undo of that recorded change (`change` is its
        inverse): same guardrails and approvals, then the ledger's verified inverse is applied
        and the tool checked against the recorded before-state; it is never compensated.
        `keep_first` (with `reverts`: the rollback plan forecasts that another run still relies
        on the change's state): once the requester is proven, the revert is asked to keep the
        change first; kept, the step ends there, and no approver is asked about an undo that
        would not happen.
        """
        step = StepRecord(
            step_id=f"s{len(self.status.steps) + 1:02d}-{change.kind}",
            change=change,
            started_at=workflow.now(),
        )
        if expires_after and workflow.patched(TTL_IN_DIGEST):
            step.expires_after_s = expires_after.total_seconds()
        self.status.steps.append(step)
        self.audit("step.requested", step.step_id, change=change.model_dump(),
                   **({"excluded_deciders": list(excluded_deciders)} if excluded_deciders else {}),
                   **({"expires_after_s": step.expires_after_s} if step.expires_after_s else {}))

        # A step that is not a rollback's undo asks its check to apply it at once when no person
        # need decide (one activity, not two); otherwise the check only gathers the facts.
        intent = self._apply_intent(step, expires_after) if reverts is None else None
        try:
            check = await workflow.execute_activity_method(
                GateActivities.check_step,
                CheckRequest(run_id=self.run_id, step_id=step.step_id, change=change, audit=self._take_audit(),
                             apply=intent),
                **(ONE_TRIP_OPTS if intent is not None else CHECK_OPTS),
            )
        except (ActivityError, asyncio.CancelledError):
            # A check asked to apply may have written the intent and called the tool before it
            # failed: compensation asks the tool. (Patched: runs begun before it replay as they ran.)
            if intent is not None and workflow.patched(CHECK_MAY_APPLY):
                self._uncertain_step(step, intent.idempotency_key, protective)
            raise
        policy = check.policy
        step.mode = policy.mode
        judgement = judge(change, check)
        step.verdicts, step.thresholds = judgement.verdicts, judgement.thresholds
        if check.decided:
            # The check judged it (the same `judge` as above), proved the requester and audited
            # both; it applied the change, or the tool failed and the step waits it out.
            self._requester_proof = self._requester_proof or check.requester_proof
            if check.record is not None:
                return self._applied(step, check.record, protective, intent.expires_at)
            return await self._apply(step, change, policy, [], intent.expires_at, protective)
        if self._requester_proof is None:
            self._prove_requester(step, policy)
        self.audit("guardrails.evaluated", step.step_id, **judgement.audit_data(change.kind))
        if reverts is not None and keep_first and workflow.patched(KEEP_FIRST) and await self._kept(step, reverts):
            return step

        if judgement.refused:
            await self._refuse(step, f"guardrail denied {change.describe()}: {judgement.why_refused()}", policy)
            if abort_on_deny:
                raise StepDenied(step, step.note)
            return step

        approved_by: list[str] = []
        if judgement.needs_human:
            # Asked here, once a step waits: a run that already waited before the rule keeps the old one.
            self.book.starter_may_decide = not workflow.patched(STARTER_NOT_DECIDER)
            approved, approved_by, note = await ask_and_tell(self, step, policy, judgement.why_ask(), excluded_deciders)
            if not approved:
                step.state, step.note, step.finished_at = StepState.DENIED, note, workflow.now()
                self.audit("step.denied", step.step_id, kind=step.change.kind, reason=note)
                if abort_on_deny:
                    raise StepDenied(step, note)
                return step

        if reverts is not None:
            return await self._undo(step, reverts)
        expires_at = workflow.now() + expires_after if expires_after else None  # from when it is applied
        return await self._apply(step, change, policy, approved_by, expires_at, protective)

    def _apply_intent(self, step: StepRecord, expires_after: timedelta | None) -> ApplyIntent:
        """What the check needs to apply the step itself; the requester's evidence until proven."""
        proof_needed = {} if self._requester_proof is not None else dict(
            requester=requester_evidence(), claimed_requester=self._claimed_requester,
            trigger_digest=self._trigger_digest, started_at=self.status.started_at)
        return ApplyIntent(
            idempotency_key=f"{self.run_id}/{step.step_id}",
            requested_by=self.status.requested_by,
            expires_at=workflow.now() + expires_after if expires_after else None,
            **proof_needed,
        )

    def _uncertain_step(self, step: StepRecord, change_id: str, protective: bool) -> None:
        """A step whose tool call failed with an unknown outcome (the ledger may hold its
        written-ahead intent): compensation asks the tool and undoes it if the tool holds it."""
        step.state, step.finished_at, step.change_id = StepState.FAILED, workflow.now(), change_id
        if not protective:
            self._uncertain.append(step)

    async def _apply(self, step: StepRecord, change: Change, policy: GatePolicy, approved_by: list[str],
                     expires_at: datetime | None, protective: bool) -> StepRecord:
        """Apply a step the gate let through (patiently: a tool outage is waited out)."""
        step.state = StepState.APPLYING
        request = ApplyRequest(
            run_id=self.run_id,
            step_id=step.step_id,
            change=change,
            idempotency_key=f"{self.run_id}/{step.step_id}",
            mode=policy.mode,
            requested_by=self.status.requested_by,
            approved_by=approved_by,
            expires_at=expires_at,
            audit=self._take_audit(),
        )
        try:
            record: ChangeRecord = await call_patiently(self, step, policy, GateActivities.apply_change, request)
        except (ActivityError, asyncio.CancelledError):
            self._uncertain_step(step, request.idempotency_key, protective)
            raise
        return self._applied(step, record, protective, expires_at)

    def _applied(self, step: StepRecord, record: ChangeRecord, protective: bool,
                 expires_at: datetime | None) -> StepRecord:
        """Book a change the tool took (or already held): the saga, the protective set, the TTL."""
        step.change_id = record.change_id
        step.finished_at = workflow.now()
        if record.status == "unchanged":
            step.state, step.unchanged = StepState.UNCHANGED, True
            step.note = "the tool already was in the wanted state; nothing to undo"
            return step
        step.state = StepState.APPLIED
        self._saga.append((step, record))
        if protective:
            self._protective.add(step.step_id)
        if expires_at is not None and record.inverse is not None:
            step.expires_at = expires_at
            self.status.summary["expiries_pending"] = self.status.summary.get("expiries_pending", 0) + 1
            self.audit("expiry.scheduled", step.step_id, change_id=record.change_id,
                       expires_at=expires_at.isoformat())
        return step

    async def _undo(self, step: StepRecord, record: ChangeRecord) -> StepRecord:
        """Apply a recorded change's inverse for a rollback, once the gate let it through."""
        step.state = StepState.APPLYING
        try:
            result = await self._revert_for_rollback(step, record)
        except ActivityError as err:
            result = RevertResult(change_id=record.change_id, reverted=False, verified=False,
                                  detail=_describe_failure(err))
            step.state = StepState.FAILED
        self._undone(step, record, result)
        return step

    async def _kept(self, step: StepRecord, record: ChangeRecord) -> bool:
        """Keep a rollback's change another run still relies on, before its undo is judged or
        asked about: True when the revert kept it (or found it undone already); False when nobody
        holds its state any more, or the ask failed: the undo then goes through the gate."""
        try:
            result = await self._revert_for_rollback(step, record, keep_only=True)
        except ActivityError:
            return False
        if not (result.kept or result.already):
            return False
        self._undone(step, record, result)
        return True

    async def _revert_for_rollback(self, step: StepRecord, record: ChangeRecord, keep_only: bool = False):
        return await workflow.execute_activity_method(
            GateActivities.revert_change,
            RevertRequest(change_id=record.change_id, reason="rollback", by=self.status.requested_by,
                          run_id=record.run_id, audit=self._take_audit(), expected_inverse=step.change,
                          keep_only=keep_only),
            **UNDO_OPTS,
        )

    def _undone(self, step: StepRecord, record: ChangeRecord, result: RevertResult) -> None:
        """Book a rollback's revert on its step; kept: another run still relies on the state."""
        if step.state != StepState.FAILED:
            step.state = StepState.APPLIED if result.reverted else (
                StepState.KEPT if result.kept else StepState.UNCHANGED)
        step.change_id, step.note, step.finished_at = record.change_id, result.detail, workflow.now()
        self.undone[record.change_id] = result
        self.audit("change.undone", step.step_id, change_id=record.change_id, reverted=result.reverted,
                   verified=result.verified, detail=result.detail,
                   **({"kept": result.kept, "held_by_run": result.held_by_run} if result.kept else {}))

    def _prove_requester(self, step: StepRecord, policy: GatePolicy) -> None:
        """Before the first change: the requester is the verified signer (or the service itself)."""
        try:
            self._requester_proof = prove_requester(self._claimed_requester, self._trigger_digest, policy,
                                                    self.status.started_at)
        except Refused as refused:
            step.state, step.note, step.finished_at = StepState.DENIED, str(refused), workflow.now()
            self.audit("run.request_refused", step.step_id, requested_by=self._claimed_requester, reason=str(refused))
            raise Rejected(f"{refused}; nothing was changed") from None
        self.audit("run.requester_proven", requested_by=self._claimed_requester, **self._requester_proof)

    async def _refuse(self, step: StepRecord, note: str, policy: GatePolicy) -> None:
        step.state, step.note, step.finished_at = StepState.DENIED, note, workflow.now()
        self.audit("step.denied", step.step_id, kind=step.change.kind, reason=note)
        for verdict in step.verdicts:
            if verdict.outcome == Outcome.DENY and verdict.alert:
                await self.alert(
                    policy.alert_priority,
                    f"Handrail refused {step.change.describe()}",
                    f"Run {self.run_id} asked for {step.change.describe()}. {verdict.reason}. "
                    f"Guardrail {verdict.guardrail} denied it; nothing was changed.",
                    tags=["guardrail", verdict.guardrail],
                )
                return

    async def _ask_for_approval(
        self, step: StepRecord, policy: GatePolicy, why: str, excluded: tuple[str, ...] = ()
    ) -> tuple[bool, list[str], str]:
        step.state = StepState.AWAITING_APPROVAL
        step.approvals_needed = policy.required_approvals
        step.change_digest = change_digest(step)  # what a signed decision must name
        self.book.open(step, policy, excluded)
        self._set_state(RunState.AWAITING_APPROVAL, awaiting=policy.kind)
        self.audit("approval.requested", step.step_id, kind=step.change.kind, why=why,
                   required=policy.required_approvals, approvers=policy.approvers.model_dump(),
                   timeout_s=policy.approval_timeout_s,
                   change_digest=step.change_digest, keys=policy.user_keys)
        await self.flush_audit()

        if not await self._wait_for_decision(step, policy.approval_timeout_s):
            if policy.escalate_to.users or policy.escalate_to.roles:
                self.book.escalate(step)
                self.audit("approval.escalated", step.step_id, kind=step.change.kind,
                           to=policy.escalate_to.model_dump())
                await self.alert(
                    "P2", f"Approval escalated: {step.change.describe()}",
                    f"Run {self.run_id} has waited {policy.approval_timeout_s / 3600:g}h for approval of "
                    f"{step.change.describe()}; now also open to {policy.escalate_to.model_dump()}.",
                    tags=["approval", "escalation"],
                )
                await self._wait_for_decision(step, policy.escalation_timeout_s)

        outcome = self.book.close(step)
        self._set_state(RunState.RUNNING)
        if outcome.timed_out:
            approve = policy.on_timeout == "approve"
            self.audit("approval.timeout", step.step_id, kind=step.change.kind, applied=policy.on_timeout)
            note = f"no decision in time; policy on_timeout is {policy.on_timeout}"
            return approve, ["on_timeout"] if approve else [], note
        self.audit("approval.decided", step.step_id, kind=step.change.kind, approved=outcome.approved,
                   by=outcome.deciders)
        if outcome.approved:
            return True, outcome.deciders, "approved by " + ", ".join(outcome.deciders)
        return False, [], f"denied by {', '.join(outcome.deciders)}: {outcome.reason}"

    async def _wait_for_decision(self, step: StepRecord, timeout_s: float) -> bool:
        """Wait for the step's decision; audit each decision (even a rejected one) as it comes."""
        deadline = workflow.now() + timedelta(seconds=timeout_s)
        while not self.book.decided(step):
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                return False
            try:
                await workflow.wait_condition(
                    lambda: self.book.decided(step) or self.book.has_events(),
                    timeout=timedelta(seconds=remaining),
                )
            except asyncio.TimeoutError:
                return False
            await self.flush_audit()
        return True

    def report(self) -> RunStatus:
        return self.status


async def _keep_awaiting(task: asyncio.Future):
    """Await a task to its end even if this coroutine is cancelled meanwhile.

    A bare `asyncio.shield` would let the cancel close the workflow and abandon the task
    (and with it a half-done compensation); looping keeps the workflow alive until done.
    """
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()


def _describe_failure(exc: BaseException) -> str:
    cause = exc
    while getattr(cause, "cause", None) is not None:
        cause = cause.cause
    return str(cause) or type(cause).__name__


class RunbookWorkflow:
    """Base for every runbook workflow: the decision signal and the status query."""

    def __init__(self) -> None:
        self._book = ApprovalBook()

    def runbook(self, runbook: str, requested_by: str, subject: str, trigger=None) -> Runbook:
        """`trigger`: the run's input, bound by the requester's signature (handrail.gate.requests)."""
        return Runbook(self._book, runbook, requested_by, subject, trigger)

    @workflow.signal
    def decide(self, decision: Any) -> None:
        """A decision; typed `Any` so that a malformed raw signal is judged (and audited), not dropped."""
        self._book.receive_payload(decision, workflow.now())

    @workflow.query
    def status(self) -> RunStatus | None:
        return self._book.status
