"""The step gate's side effects: gather guardrail facts, call the tool, write the ledger.

A step costs two activities: `check_step` (policy slice + guardrail context) and
`apply_change` (before-state, tool call, after-state, ledger). Audit events produced in
workflow code ride along with whichever of these runs next, so auditing adds no round
trips. These activities decide nothing: verdicts and approvals happen in the workflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import tool_failure
from handrail.actions import UnknownAction, action_for
from handrail.gate.freeze import active_freeze
from handrail.gate.ledger import Ledger, UntrustedRecord
from handrail.gate.models import (
    AlertRequest,
    ApplyRequest,
    AuditEvent,
    ChangeRecord,
    CheckRequest,
    GuardrailContext,
    RevertRequest,
    RevertResult,
    RunChangesRequest,
    StepCheck,
)
from handrail.gate.policy import PolicyError
from handrail.gate.policy_signing import PolicyKeeper, signature_path
from handrail.ops.config import Settings
from handrail.ops.log import get_logger
from handrail.tools.errors import ToolError
from handrail.trust.baseline import ThresholdCache


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _mtime(path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None




class GateActivities:
    """Holds the worker's long-lived resources: the ledger, the tool clients, the policy."""

    def __init__(self, settings: Settings, tools: Any, ledger: Ledger | None = None):
        self.settings = settings
        self.tools = tools
        self.ledger = ledger or Ledger(settings.ledger_path)
        self._policy = None
        self._policy_mtime: tuple | None = None
        self._keeper = PolicyKeeper(settings.home)
        self._alerted: set[str] = set()
        self.thresholds = ThresholdCache(self.ledger)

    def policy(self):
        """The policy file, re-read when it or its signatures change so `handrail trust set` takes
        effect; with `[policy_admins]`, an edit counts only once enough admins signed it, and until
        then the last signed policy stays in force (handrail.gate.policy_signing)."""
        path = self.settings.policy_path
        mtime = (_mtime(path), _mtime(signature_path(path)))
        if self._policy is None or mtime != self._policy_mtime:
            self._policy = self._keeper.load(path)
            self._policy_mtime = mtime
        return self._policy

    async def _report_refused_policy(self, run_id: str) -> None:
        """Audit and raise (P1, once per edit) a policy edit the keeper refused to run."""
        refused = self._keeper.refused
        if refused is None or refused.digest in self._alerted:
            return
        self.ledger.append([AuditEvent(id=f"policy-refused-{refused.digest}", at=_now(), run_id="handrail-policy",
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
        self.ledger.append(request.audit)
        try:
            policy = self.policy()
        except PolicyError as exc:
            raise ApplicationError(str(exc), type="PolicyError", non_retryable=True) from None
        await self._report_refused_policy(request.run_id)
        kind = request.change.kind
        allowlist: list[str] = []
        guardrails = policy.guardrails_for(kind)
        for options in guardrails:
            name = options.get("allowlist")
            if name:
                allowlist.extend(policy.allowlists.get(name, []))
        facts = await self._facts(request)
        thresholds, sources = self.thresholds.derive(kind, guardrails, _now())
        context = GuardrailContext(
            thresholds=thresholds,
            threshold_sources=sources,
            protected=policy.protected(),
            allowlist=allowlist,
            target_tags=list(facts.get("tags", [])),
            recent_count_hour=self.ledger.count_changes(kind, _now() - timedelta(hours=1)),
            recent_count_run=self.ledger.count_run_changes(kind, request.run_id),
            guardrails=guardrails,
            freeze=active_freeze(policy.freeze, _now()),
        )
        return StepCheck(policy=policy.gate_policy(kind), context=context)

    async def _facts(self, request: CheckRequest) -> dict[str, Any]:
        """Facts about the target some guardrails need (CMDB tags), if the action offers them."""
        try:
            facts = getattr(action_for(request.change.kind), "facts", None)
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
        log = get_logger(run_id=request.run_id, step_id=request.step_id, kind=request.change.kind)
        self.ledger.append(request.audit)
        try:
            action = action_for(request.change.kind)
        except UnknownAction as exc:
            raise ApplicationError(str(exc), type="UnknownAction", non_retryable=True) from None
        existing = self.ledger.change(request.idempotency_key)
        if existing is not None and existing.status != "pending":
            return existing  # a retry after the ledger write: the change is done
        try:
            before = existing.before if existing else await action.read(self.tools, request.change)
            record = self.ledger.begin_change(
                ChangeRecord(
                    change_id=request.idempotency_key,
                    run_id=request.run_id,
                    step_id=request.step_id,
                    change=request.change,
                    before=before,
                    mode=request.mode,
                    requested_by=request.requested_by,
                    approved_by=request.approved_by,
                    applied_at=_now(),
                    expires_at=request.expires_at,
                )
            )
            if action.wanted(request.change, record.before):
                record.status, record.after = "unchanged", record.before
            else:
                await action.apply(self.tools, request.change, request.idempotency_key)
                record.status = "applied"
                record.after = await action.read(self.tools, request.change)
                record.inverse = action.inverse(request.change, record.before)
        except ToolError as exc:
            log.warning("tool call failed", error=str(exc), retryable=exc.retryable)
            raise tool_failure(exc, f"{request.change.describe()} failed") from None
        self.ledger.finish_change(record)  # the row and its chained twin (what rollback later trusts)
        log.info("change recorded", status=record.status, target=request.change.target)
        return record

    @activity.defn
    async def revert_change(self, request: RevertRequest) -> RevertResult:
        """Apply a recorded change's inverse and check the tool is back in its before-state."""
        self.ledger.append(request.audit)
        try:  # only the hash-chained record is trusted: an inverse edited in the file is refused
            record = self.ledger.verified_change(request.change_id)
            previous = self.ledger.verified_revert(request.change_id)
        except UntrustedRecord as exc:
            raise ApplicationError(str(exc), type="UntrustedRecord", non_retryable=True) from None
        if record is None:
            raise ApplicationError(f"no change {request.change_id} in the ledger", non_retryable=True)
        if request.expected_inverse is not None and record.inverse != request.expected_inverse:
            raise ApplicationError(
                f"the inverse of change {request.change_id} is not the one the gate approved; refusing to act on it",
                type="UntrustedRecord", non_retryable=True)
        if previous is not None:
            return RevertResult(
                change_id=request.change_id, reverted=False, already=True,
                detail=f"already reverted by {previous.reason} ({previous.by})",
            )
        if record.inverse is None:
            return RevertResult(change_id=request.change_id, reverted=False, detail="nothing to undo")
        inverse = action_for(record.inverse.kind)
        try:
            current = await inverse.read(self.tools, record.inverse)
            if not inverse.wanted(record.inverse, current):
                await inverse.apply(self.tools, record.inverse, request.change_id + ":revert")
            state = await action_for(record.change.kind).read(self.tools, record.change)
        except ToolError as exc:
            raise tool_failure(exc, f"undoing {record.change.describe()} failed") from None
        verified = state == record.before
        detail = "tool state matches the recorded before-state" if verified else (
            f"tool state {state} differs from the recorded before-state {record.before}"
        )
        self.ledger.record_revert(
            request.change_id, request.run_id, request.reason, request.by, _now(), verified, detail,
            event=_event(request.run_id, record.step_id, "change.reverted", {
                "change_id": request.change_id, "reason": request.reason, "by": request.by,
                "inverse": record.inverse.model_dump(), "verified": verified, "detail": detail,
            }, suffix=":reverted"),
        )
        return RevertResult(change_id=request.change_id, reverted=True, verified=verified, detail=detail)

    @activity.defn
    async def record_audit(self, events: list[AuditEvent]) -> int:
        return self.ledger.append(events)

    @activity.defn
    async def raise_alert(self, request: AlertRequest) -> str:
        self.ledger.append(request.audit)
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
        return self.ledger.changes_for_run(request.run_id)

    def all(self) -> list:
        return [self.check_step, self.apply_change, self.revert_change, self.record_audit,
                self.raise_alert, self.run_changes]


def _event(run_id: str, step_id: str | None, name: str, data: Any, suffix: str = "") -> AuditEvent:
    """An audit event written by an activity; its id is stable across retries."""
    payload = data.model_dump(mode="json") if hasattr(data, "model_dump") else data
    base = payload.get("change_id", "") if isinstance(payload, dict) else ""
    return AuditEvent(id=f"{base}{suffix}:{name}", at=_now(), run_id=run_id, step_id=step_id, event=name, data=payload)

