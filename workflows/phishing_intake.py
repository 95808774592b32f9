"""Find (or deliver) a reported message for `handrail run phishing`, which holds no tool token.

The intake's activity finds the message in the phishing mailbox, or posts an .eml file
there first, with the worker's tool clients, and returns the run's trigger (keyed by the
message's content hash and mailbox entry). The CLI then starts the run itself, signed by
the person who asks, so the requester is proven like every other person-started run; the
mailbox poller marks the message processed on its next pass (the run exists already).
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.phishing_intake import IntakeRequest, PhishingIntakeActivities
    from handrail.runbooks.phishing.rules import PhishingTrigger

from workflows.gate import READ_OPTS


class IntakeReport(BaseModel):
    run_id: str
    trigger: PhishingTrigger


@workflow.defn(name="PhishingIntake")
class PhishingIntake:
    @workflow.run
    async def run(self, request: IntakeRequest) -> IntakeReport:
        trigger = await workflow.execute_activity_method(
            PhishingIntakeActivities.phishing_intake, request, **READ_OPTS)
        return IntakeReport(run_id=trigger.run_id(), trigger=trigger)
