"""The plan a finished run hands over for its changes' time-to-live.

A run used to stay open (Temporal: Running) until each change with a TTL expired, while
Handrail already called it completed: two truths for one run. Now the run completes and
hands this plan to one `ExpireChanges` workflow per run (`expiry-<run id>`), which sleeps
until each change expires and reverts it through the gate's revert activity.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ExpiryItem(BaseModel):
    step_id: str
    change_id: str
    change: str  # described, for people reading the expiry workflow's status
    expires_at: datetime
    state: str = "pending"  # pending | expired | kept (another run relies on it) | skipped | failed
    detail: str = ""


class ExpiryPlan(BaseModel):
    run_id: str
    items: list[ExpiryItem] = Field(default_factory=list)


# The expiry workflow's registered name: the activity that starts it names it (an activity
# importing the workflow module would tie activities to workflows in a circle).
EXPIRY_WORKFLOW = "ExpireChanges"


def expiry_id(run_id: str) -> str:
    return f"expiry-{run_id}"


def inherited_expiry_id(change_id: str) -> str:
    """The expiry workflow of one change that took over another's undo (`handrail.gate.holders`)."""
    return f"expiry-{change_id}"
