"""The step gate's side effects: gather guardrail facts, call the tool, write the ledger.

A step the gate may finish alone is one activity, `check_and_apply`: the check (policy
slice + guardrail context), the judgement (`handrail.gate.judgement`, the same pure function
the workflow uses), and only when nothing refuses or holds the change and the requester is
proven, the change itself. A step that needs a person (or a rollback's undo) is
`check_step`, the workflow's decision, then `apply_change` (before-state, tool call,
after-state, ledger). Audit events produced in workflow code ride along with whichever of
these runs next, in the same ledger transaction, so auditing adds no round trips.
Approvals, refusals and compensation are decided in the workflow.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.context import WorkerContext
from activities.errors import tool_failure
from activities.expiry import start_inherited_expiry
from activities.keep import Keeper, already_result
from activities.ledger_io import off_loop
from activities.settle import apply_written_ahead, heartbeating, settle
from handrail.actions import UnknownAction
from handrail.gate.blast_radius import step_limits
from handrail.gate.decisions import Refused
from handrail.gate.freeze import active_freeze
from handrail.gate.guardrails import evaluate
from handrail.gate.judgement import judge
from handrail.gate.ledger import UntrustedRecord
from handrail.gate.models import (
    AlertRequest,
    ApplyIntent,
    ApplyRequest,
    AuditEvent,
    ChangeRecord,
    CheckRequest,
    GuardrailContext,
    RevertRequest,
    RevertResult,
    RunChangesRequest,
    SetCheck,
    StepCheck,
)
from handrail.gate.policy import PolicyError
from handrail.gate.preflight import target_suffix
from handrail.gate.requests import prove_requester
from handrail.ops.log import get_logger
from handrail.runbooks.phishing.popular import PopularSettings, standing
from handrail.tools.errors import ToolError
from handrail.trust.baseline import ThresholdCache


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def _set_check(store: Any, target: str, guardrails: list, protected: list,
                     never_touch: list[str]) -> SetCheck | None:
    """Member-by-member guardrail check of a ``set:<sha256>`` batch target (off the event
    loop: a set can be large): addresses against the protected networks and special-use
    space, names against ``never_touch`` (every name the kind's never_touch guardrails
    list). A set that cannot be read yields an error: the gate refuses."""
    if not target.startswith("set:") or not any(
            g.get("type") in ("never_block", "no_reserved_space", "never_touch") for g in guardrails):
        return None
    sha = target.removeprefix("set:")

    def check() -> SetCheck:
        from handrail.intel.guardrails import check_set_members

        try:
            members = store.get_set(sha)
        except (OSError, ValueError) as exc:
            return SetCheck(sha256=sha, error=f"the set cannot be read ({type(exc).__name__})")
        return check_set_members(sha, members, {cidr: name for name, cidr in protected}, allowlist=never_touch)

    return await asyncio.to_thread(check)


class GateActivities:
    """Holds the worker's long-lived resources: the ledger, the tool clients, the policy."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.settings, self.tools, self.ledger = ctx.settings, ctx.tools, ctx.ledger
        self.thresholds = ThresholdCache(self.ledger)
        self._alerted: set[str] = set()

    async def _report_refused_policy(self, run_id: str) -> None:
        """Audit and raise (P1, once per edit) a policy edit the worker refused to run."""
        refused = self.ctx.refused_policy()
        if refused is None or refused.digest in self._alerted:
            return
        await off_loop(self.ledger.append, [AuditEvent(
            id=f"policy-refused-{refused.digest}", at=_now(), run_id="handrail-policy",
            event="policy.refused", data={"why": refused.why, "sha256": refused.digest})])
        try:
            await self.tools.alerts.raise_alert(
                "P1", "Unsigned policy edit refused",
                f"{refused.why}. Handrail keeps running on the last signed policy; `handrail policy diff` "
                "shows what the edit would change.",
                source="handrail", run_id=run_id, tags=["policy", "tamper"],
                idempotency_key=f"policy-refused-{refused.digest[:32]}")
        except ToolError as exc:
            get_logger(run_id=run_id).error("could not raise the policy alert", error=str(exc))
            return
        self._alerted.add(refused.digest)

    @activity.defn
    async def check_step(self, request: CheckRequest) -> StepCheck:
        """The audit that rode along is chained with the blast-radius reservation (one
        transaction); a check that fails before it writes the audit on the way out.
        With `request.apply`, the step is also applied when no person need decide it."""
        if request.apply is not None:
            return await self._check_and_apply(request, request.apply)
        check, _ = await self._check(request, resuming=False)
        return check

    async def _check_and_apply(self, request: CheckRequest, intent: ApplyIntent) -> StepCheck:
        """Check a step and, when the gate needs no person for it, apply it: one activity.

        The judgement is the workflow's own (`judge`), and the requester is proven before
        anything changes. Applied, the judgement's audit is chained with the change's intent;
        otherwise nothing is written ahead and the workflow refuses or asks from the check.
        A retry that finds this step's intent in the ledger carries out the decision that
        intent records (it was judged and audited when it was written). A retryable tool
        failure returns the decision without a record: the workflow waits the tool out."""
        log = get_logger(run_id=request.run_id, step_id=request.step_id, kind=request.change.kind)
        audit: list[AuditEvent] = []  # the judgement's, chained with the intent (the check writes what rode along)
        try:
            async with heartbeating():
                probe = request.model_copy(update={"apply": None})
                check, existing = await self._check(probe, resuming=activity.info().attempt > 1)
                if existing is None:
                    judgement = judge(request.change, check)
                    if not judgement.goes_alone:
                        return check  # a person decides, or the gate refuses: the workflow's part
                    proof = _proof(intent, check)
                    if intent.requester is not None and proof is None:
                        return check  # the workflow rejects the run, saying why
                    audit.extend(_judgement_audit(request, intent, judgement, proof))
                elif intent.requester is not None:  # proven and audited when the intent was written
                    proof = _proof(intent, check) or {"how": "proven when this change was judged and written ahead"}
                else:
                    proof = None
                check.decided, check.requester_proof = True, proof
                if existing is not None and existing.status != "pending":
                    check.record = existing
                    return check
                action = self._action(request.change.kind)
                apply = ApplyRequest(
                    run_id=request.run_id, step_id=request.step_id, change=request.change,
                    idempotency_key=intent.idempotency_key, mode=check.policy.mode,
                    requested_by=intent.requested_by, expires_at=intent.expires_at,
                )
                try:
                    check.record = await self._apply_written_ahead(apply, action, existing, log, audit)
                except ApplicationError as err:
                    if err.non_retryable:
                        raise  # the tool's definite answer: the step fails
                    log.warning("the tool failed; the run waits it out", error=str(err))
                return check
        finally:
            if audit:  # the judgement's audit, not chained with an intent: chain it now
                await off_loop(self.ledger.append, audit)

    async def _check(self, request: CheckRequest, resuming: bool) -> tuple[StepCheck, ChangeRecord | None]:
        """The step's check; with `resuming`, also this step's written-ahead intent, if any."""
        try:
            policy = self.ctx.policy()
            await self._report_refused_policy(request.run_id)
            facts = await self._facts(request)
            guardrails = policy.guardrails_for(request.change.kind)
            thresholds, sources, (recent_hour, recent_run), existing = await off_loop(
                self._ledger_side, request, guardrails, resuming)
        except Exception:
            await off_loop(self.ledger.append, request.audit)  # what rode along is kept, whatever fails
            raise
        allowlist: list[str] = []
        for options in guardrails:
            name = options.get("allowlist")
            if name:
                allowlist.extend(policy.allowlists.get(name, []))
        context = GuardrailContext(
            thresholds=thresholds,
            threshold_sources=sources,
            protected=policy.protected(),
            allowlist=allowlist,
            target_tags=list(facts.get("tags", [])),
            recent_count_hour=recent_hour,
            recent_count_run=recent_run,
            guardrails=guardrails,
            popularity=await self._popularity(request, guardrails, policy),
            set_check=await _set_check(self.ctx.intel.store, request.change.target, guardrails, policy.protected(),
                                       policy.never_touch_names(request.change.kind)),
            freeze=active_freeze(policy.freeze, _now()),
            target_suffix=await asyncio.to_thread(target_suffix, request.change.target, guardrails),
        )
        return StepCheck(policy=policy.gate_policy(request.change.kind), context=context,
                         verdicts=evaluate(request.change, context)), existing

    async def _popularity(self, request: CheckRequest, guardrails: list[dict[str, Any]], policy) -> dict[str, Any]:
        """Where the target stands in the top-sites list, if a `popular_domain` guardrail asks."""
        if not any(g.get("type") == "popular_domain" for g in guardrails):
            return {}
        try:
            settings = PopularSettings.from_policy(policy.settings, self.settings.home,
                                                   self.settings.policy_path.parent)
        except PolicyError as exc:
            return {"problem": str(exc)}  # the guardrail then holds: fail safe
        found = await asyncio.to_thread(standing, request.change.target, settings)  # reads the list once
        return found.as_fact()

    def _ledger_side(self, request: CheckRequest, guardrails: list,
                     resuming: bool = False) -> tuple[dict, dict, tuple[int, int], ChangeRecord | None]:
        """Everything the check needs from the ledger, in one trip off the event loop: the
        baseline thresholds, then the audit that rode along written and the changes of this
        kind counted in the last hour and in this run (the blast-radius guardrails' input);
        with `resuming`, this step's written-ahead intent.

        With a `rate_limit` or `per_run_limit`, the ledger counts and reserves this step's place in
        one transaction (`check_limits`, which also chains the audit), so steps checked at once on
        several workers cannot pass a limit together; the reservation becomes the change when it
        is applied, or expires."""
        kind, run_id = request.change.kind, request.run_id
        change_id = f"{run_id}/{request.step_id}"
        existing = self.ledger.change(change_id) if resuming else None
        thresholds, sources = self.thresholds.derive(kind, guardrails, _now())
        per_hour, per_run = step_limits(guardrails, thresholds)
        if per_hour is None and per_run is None:
            if request.audit:
                self.ledger.append(request.audit)
            counts = (self.ledger.count_changes(kind, _now() - timedelta(hours=1)),
                      self.ledger.count_run_changes(kind, run_id))
            return thresholds, sources, counts, existing
        check = self.ledger.check_limits(kind, run_id, change_id, _now(), per_hour, per_run, audit=request.audit)
        return thresholds, sources, (check.hour, check.run), existing

    async def _facts(self, request: CheckRequest) -> dict[str, Any]:
        """Facts about the target some guardrails need (CMDB tags), if the action offers them."""
        try:
            facts = getattr(self.ctx.actions.for_kind(request.change.kind), "facts", None)
        except UnknownAction:
            return {}
        if facts is None:
            return {}
        try:
            return await facts(self.tools, request.change)
        except ToolError as exc:
            raise tool_failure(exc, f"looking up {request.change.target} failed") from None

    @activity.defn
    async def apply_change(self, request: ApplyRequest) -> ChangeRecord:
        """The audit that rode along is chained with the change's intent (`begin_change`, one
        transaction); a step that never gets that far writes it on the way out."""
        log = get_logger(run_id=request.run_id, step_id=request.step_id, kind=request.change.kind)
        audit = list(request.audit)
        try:
            existing = await off_loop(self.ledger.change, request.idempotency_key)
            action = self._action(request.change.kind)
            if existing is not None and existing.status != "pending":
                return existing  # a retry after the ledger write: the change is done
            async with heartbeating():
                return await self._apply_written_ahead(request, action, existing, log, audit)
        finally:
            if audit:  # not chained with an intent (failed, refused or done before): chain it now
                await off_loop(self.ledger.append, audit)

    def _action(self, kind: str):
        """The action kind's implementation; an unknown kind is a definite, non-retryable error."""
        try:
            return self.ctx.actions.for_kind(kind)
        except UnknownAction as exc:
            raise ApplicationError(str(exc), type="UnknownAction", non_retryable=True) from None

    async def _apply_written_ahead(self, request: ApplyRequest, action, existing, log,
                                   audit: list[AuditEvent]) -> ChangeRecord:
        """`audit` is emptied once `begin_change` has chained it."""
        try:
            before = existing.before if existing else await action.read(self.tools, request.change)
            already = action.wanted(request.change, before)
            # Write ahead: the intent, before-state and inverse are in the ledger before the call.
            record = await off_loop(
                self.ledger.begin_change,
                ChangeRecord(
                    change_id=request.idempotency_key,
                    run_id=request.run_id,
                    step_id=request.step_id,
                    change=request.change,
                    before=before,
                    inverse=None if already else action.inverse(request.change, before),
                    mode=request.mode,
                    requested_by=request.requested_by,
                    approved_by=request.approved_by,
                    applied_at=_now(),
                    expires_at=request.expires_at,
                ),
                audit,
            )
            audit.clear()
            if action.wanted(request.change, record.before):
                record.status, record.after, record.inverse = "unchanged", record.before, None
                # the row and its chained twin (what rollback later trusts)
                await off_loop(self.ledger.finish_change, record)
            else:  # finishes the record itself, once the tool confirmed it (its answer or a read)
                record.inverse = record.inverse or action.inverse(request.change, record.before)
                record = await apply_written_ahead(self.ledger, action, self.tools, record,
                                                   request.idempotency_key, retried=existing is not None)
        except ToolError as exc:
            log.warning("tool call failed", error=str(exc), retryable=exc.retryable)
            raise tool_failure(exc, f"{request.change.describe()} failed") from None
        log.info("change recorded", status=record.status, target=request.change.target)
        return record

    @activity.defn
    async def revert_change(self, request: RevertRequest) -> RevertResult:
        """Apply a recorded change's inverse and check the tool is back in its before-state;
        or keep it, the tool untouched, when another run still relies on its state
        (`activities.keep`, `handrail.gate.holders`). Heartbeats like an apply, so a worker
        killed mid-revert is noticed in seconds."""
        async with heartbeating():
            return await self._revert(request)

    async def _revert(self, request: RevertRequest) -> RevertResult:
        await off_loop(self.ledger.append, request.audit)
        try:  # only the hash-chained record is trusted: an inverse edited in the file is refused
            record = await off_loop(self.ledger.verified_change, request.change_id)
            previous = await off_loop(self.ledger.verified_revert, request.change_id)
        except UntrustedRecord as exc:
            raise ApplicationError(str(exc), type="UntrustedRecord", non_retryable=True) from None
        if record is None:
            return RevertResult(change_id=request.change_id, reverted=False,
                                detail="no such change was recorded: the tool was never called")
        if request.expected_inverse is not None and record.inverse != request.expected_inverse:
            raise ApplicationError(
                f"the inverse of change {request.change_id} is not the one the gate approved; refusing to act on it",
                type="UntrustedRecord", non_retryable=True)
        if record.status == "pending":  # written ahead, outcome unknown: the tool decides
            try:
                record = await settle(self.ledger, self.ctx.actions.for_kind(record.change.kind), self.tools, record)
            except ToolError as exc:
                raise tool_failure(exc, f"reading {record.change.describe()} to settle it failed") from None
        if record.status in ("not_applied", "unchanged"):
            return RevertResult(change_id=request.change_id, reverted=False,
                                detail=f"the tool does not hold this change ({record.status}); nothing to undo")
        if previous is not None:
            return await off_loop(already_result, self.ledger, request.change_id, previous)
        if record.inverse is None:
            return RevertResult(change_id=request.change_id, reverted=False, detail="nothing to undo")
        keeper = Keeper(self.ledger, self.tools, self.ctx.actions, start_expiry=start_inherited_expiry)
        try:  # kept when another run still relies on the state; otherwise undone and checked
            return await keeper.undo(request, record)
        except ToolError as exc:
            raise tool_failure(exc, f"undoing {record.change.describe()} failed") from None

    @activity.defn
    async def record_audit(self, events: list[AuditEvent]) -> int:
        return await off_loop(self.ledger.append, events)

    @activity.defn
    async def raise_alert(self, request: AlertRequest) -> str:
        await off_loop(self.ledger.append, request.audit)
        try:
            alert = await self.tools.alerts.raise_alert(
                request.priority, request.title, request.body, source="handrail",
                run_id=request.run_id, tags=request.tags, idempotency_key=request.idempotency_key,
            )
        except ToolError as exc:
            raise tool_failure(exc, "raising the SOC alert failed") from None
        return alert.id

    @activity.defn
    async def run_changes(self, request: RunChangesRequest) -> list[ChangeRecord]:
        return await off_loop(self.ledger.changes_for_run, request.run_id)


def _proof(intent: ApplyIntent, check: StepCheck) -> dict[str, Any] | None:
    """How the run's requester is proven (None if it is not, or was proven before)."""
    if intent.requester is None:
        return None
    try:
        return prove_requester(intent.requester, intent.claimed_requester, intent.trigger_digest,
                               check.policy, intent.started_at or _now())
    except Refused:
        return None  # the workflow proves it again, and rejects the run with the reason


def _judgement_audit(request: CheckRequest, intent: ApplyIntent, judgement, proof: dict | None) -> list[AuditEvent]:
    """The audit the workflow writes when it judges a step, written here instead (same data)."""
    key, at = intent.idempotency_key, _now()
    events = []
    if proof is not None:
        events.append(AuditEvent(id=f"{key}:run.requester_proven", at=at, run_id=request.run_id,
                                 event="run.requester_proven",
                                 data={"requested_by": intent.claimed_requester, **proof}))
    events.append(AuditEvent(id=f"{key}:guardrails.evaluated", at=at, run_id=request.run_id,
                             step_id=request.step_id, event="guardrails.evaluated",
                             data=judgement.audit_data(request.change.kind)))
    return events
