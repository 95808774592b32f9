"""Every activity the worker registers, built around the worker's shared resources.

Kept out of the package `__init__` so that importing one area (`activities.gate`) does not
import them all.

Each module holds one area's side effects as a class whose `@activity.defn` methods are
its activities; add a new area by appending its class to `ACTIVITY_CLASSES`.
"""

from __future__ import annotations

from activities.cases import CaseActivities
from activities.context import WorkerContext
from activities.exfiltration import ExfiltrationActivities
from activities.expiry import ExpiryActivities
from activities.gate import GateActivities
from activities.intel import IntelActivities
from activities.notify import NotifyActivities
from activities.phishing import PhishingActivities
from activities.phishing_intake import PhishingIntakeActivities
from activities.preflight import PreflightActivities
from activities.privilege import PrivilegeActivities
from activities.reconcile import ReconcileActivities
from activities.rogue import RogueActivities
from activities.rollback import RollbackActivities

ACTIVITY_CLASSES: list[type] = [GateActivities, CaseActivities, PhishingActivities, ExfiltrationActivities,
                                PrivilegeActivities, RogueActivities, IntelActivities, ReconcileActivities,
                                RollbackActivities, PhishingIntakeActivities,
                                PreflightActivities,  # read-only checks before a run starts
                                ExpiryActivities,  # starts a completed run's expiry workflow
                                NotifyActivities]  # tells a waiting step's approvers


def activity_methods(instance: object) -> list:
    """The bound `@activity.defn` methods of one area's instance (derived, never hand-listed)."""
    return [
        getattr(instance, name)
        for name, member in vars(type(instance)).items()
        if hasattr(member, "__temporal_activity_definition")
    ]


def all_activities(ctx: WorkerContext) -> list:
    """Instantiate each area once around the worker's context."""
    return [method for cls in ACTIVITY_CLASSES for method in activity_methods(cls(ctx))]
