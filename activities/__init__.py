"""Every activity the worker registers, built around the worker's shared resources.

Each module holds one area's side effects as a class whose methods are activities; add a
new area by appending its class to `ACTIVITY_CLASSES`.
"""

from __future__ import annotations

from typing import Any

from activities.exfiltration import ExfiltrationActivities
from activities.expiry import ExpiryActivities
from activities.gate import GateActivities
from activities.intel import IntelActivities
from activities.phishing import PhishingActivities
from activities.preflight import PreflightActivities
from activities.privilege import PrivilegeActivities
from activities.rogue import RogueActivities
from handrail.gate.ledger import Ledger
from handrail.ops.config import Settings

ACTIVITY_CLASSES: list[type] = [GateActivities, PhishingActivities, ExfiltrationActivities, PrivilegeActivities, RogueActivities, IntelActivities]
ACTIVITY_CLASSES.append(PreflightActivities)  # read-only checks before a run starts
ACTIVITY_CLASSES.append(ExpiryActivities)  # starts a completed run's expiry workflow


def all_activities(settings: Settings, tools: Any, ledger: Ledger) -> list:
    """Instantiate each area once, sharing the ledger and the tool clients."""
    activities: list = []
    for cls in ACTIVITY_CLASSES:
        activities.extend(cls(settings, tools, ledger).all())
    return activities
