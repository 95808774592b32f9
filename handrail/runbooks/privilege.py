"""The privilege guardrail's data: what crosses its workflow/activity boundaries.

A privilege-change event from IAM becomes one `PrivilegeGuard` run (`privilege-guard-<event
id>`). An activity gathers the facts (`PrivilegeFacts`): the event, whether the group is
privileged, whether an approved change covers it (a standing exception in the policy, or a
change ticket the change platform shows approved for that moment), whether the principal
is high-profile (CMDB tag `executive`). The workflow decides from those facts alone.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from handrail.gate.limits import Principal, ToolId

RUNBOOK = "privilege-guard"
_EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def valid_event_id(event_id: str) -> bool:
    return bool(_EVENT_ID.match(event_id or ""))


def privilege_run_id(event_id: str) -> str:
    """One run per event, whoever starts it (the poller or `handrail run privilege-guard`)."""
    safe = re.sub(r"[^A-Za-z0-9._:-]", "_", event_id.strip())[:64] or "_"
    return f"{RUNBOOK}-{safe}"


class PrivilegeTrigger(BaseModel):
    event_id: ToolId
    requested_by: Principal = "iam-poller"  # who started the run; the run's requester becomes the principal


class IamPoll(BaseModel):
    """The argument of the `iam` schedule's `PollIamEvents` runs."""

    requested_by: str = "iam-poller"


class PrivilegeFacts(BaseModel):
    event_id: str
    problem: str | None = None  # set when the event is unknown or malformed: the run is rejected
    kind: str = ""
    principal: str = ""
    principal_type: str = ""
    group: str = ""
    privileged: bool = False
    actor: str = ""
    at: str = ""
    change_ticket: str | None = None
    ticket_status: str | None = None  # approved | pending | rejected | unknown
    ticket_in_window: bool = False
    standing_exception: bool = False
    is_member: bool = False
    high_profile: bool = False
    high_profile_tags: list[str] = Field(default_factory=list)
    devices: list[str] = Field(default_factory=list)  # the device itself, or the user's CMDB devices

    @property
    def gained_privilege(self) -> bool:
        return self.kind == "group_member_added" and self.privileged

    def covered_by(self) -> str | None:
        """The approved change that covers this event, or None."""
        if self.standing_exception:
            return "a standing exception in the policy"
        if self.change_ticket and self.ticket_status == "approved" and self.ticket_in_window:
            return f"approved change {self.change_ticket}"
        return None

    def why_not_covered(self) -> str:
        if not self.change_ticket:
            return "no change ticket and no standing exception"
        if self.ticket_status == "unknown":
            return f"change ticket {self.change_ticket} does not exist on the change platform"
        if self.ticket_status != "approved":
            return f"change ticket {self.change_ticket} is {self.ticket_status}, not approved"
        return f"change ticket {self.change_ticket} is approved but not for this moment (outside its window)"


class MarkEventRequest(BaseModel):
    event_id: str
    outcome: str
    idempotency_key: str
