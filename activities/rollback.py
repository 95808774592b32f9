"""The rollback's one fact-finding activity: the run's verified changes, its parties, the policy.

Each change comes from `Ledger.verified_change`, so an inverse edited in the ledger file
is handed to the workflow as untrusted (and refused loudly), never as something to run.
Each also carries the forecast of whether another run still relies on its state (then
undoing it keeps the tool as it is, and the rollback asks nobody to approve an undo that
would not happen); the revert itself decides, when it runs.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from handrail.actions import SINGLE_ACTIONS, UnknownAction
from handrail.gate.holders import forecast_holder
from handrail.gate.ledger import Ledger, UntrustedRecord, open_ledger
from handrail.gate.models import ChangeRecord
from handrail.gate.policy import PolicyError
from handrail.gate.policy_signing import PolicyKeeper
from handrail.gate.rollback import (
    RollbackItem,
    RollbackPlan,
    RollbackPlanRequest,
    RollbackSettingsError,
    allowed_for,
    parties_from_audit,
)
from handrail.ops.config import Settings


class RollbackActivities:
    def __init__(self, settings: Settings, tools: Any = None, ledger: Ledger | None = None):
        """Built around the worker's resources: (settings, tools, ledger) or one context holding them."""
        self.actions = getattr(settings, "actions", None)
        if hasattr(settings, "ledger") and hasattr(settings, "settings"):  # a worker context
            settings, ledger = settings.settings, settings.ledger
        self.settings = settings
        self.ledger = ledger or open_ledger(settings)

    @activity.defn
    def rollback_plan(self, request: RollbackPlanRequest) -> RollbackPlan:
        rows = list(self.ledger.audit_rows(request.run_id))
        runbook, parties = parties_from_audit(rows)
        plan = RollbackPlan(run_id=request.run_id, runbook=runbook, known=bool(rows), parties=parties)
        try:
            policy = PolicyKeeper(self.settings.home).load(self.settings.policy_path)  # the signed one
            plan.allowed = allowed_for(policy, runbook)
            plan.user_roles = {name: list(user.roles) for name, user in policy.users.items()}
        except (PolicyError, RollbackSettingsError) as exc:
            plan.policy_error = str(exc).rstrip(".")
        for found in reversed(self.ledger.verified_changes_for_run(request.run_id)):
            if isinstance(found, UntrustedRecord):
                plan.items.append(RollbackItem(change_id=found.change_id, untrusted=str(found)))
            else:
                plan.items.append(self._item(found))
        return plan

    def _item(self, record: ChangeRecord) -> RollbackItem:
        """The plan's item for a trusted change, with its forecast: kept, if another run holds its state."""
        item = RollbackItem(change_id=record.change_id, record=record)
        if record.why_not_undoable() is not None:
            return item
        try:
            action = self.actions.for_kind(record.change.kind) if self.actions else SINGLE_ACTIONS[record.change.kind]
        except (KeyError, UnknownAction):
            return item
        holder = forecast_holder(self.ledger, action, record)
        if holder is not None:
            item.kept_by_run, item.kept_by_change = holder.run_id, holder.change_id
        return item

    def all(self) -> list:
        return [self.rollback_plan]
