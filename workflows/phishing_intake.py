"""Start a phishing run for a reported message on behalf of the CLI, which holds no tool token.

The intake's activity finds (or delivers) the message with the worker's tool clients; the
run is then started as an abandoned child with the id derived from its Message-ID (the same
message twice still runs once) and the message is marked processed, as the poller does.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.phishing import PhishingActivities
    from activities.phishing_intake import IntakeRequest, PhishingIntakeActivities
    from handrail.runbooks.phishing.rules import MarkProcessed, phishing_run_id

from workflows.phishing import PhishingResponse
from workflows.poller import start_runs

_SECONDS_30 = timedelta(seconds=30)


class IntakeReport(BaseModel):
    run_id: str
    already: bool = False


@workflow.defn(name="PhishingIntake")
class PhishingIntake:
    @workflow.run
    async def run(self, request: IntakeRequest) -> IntakeReport:
        trigger = await workflow.execute_activity_method(
            PhishingIntakeActivities.phishing_intake, request, start_to_close_timeout=_SECONDS_30)
        report = await start_runs("cli", PhishingResponse.run, [trigger], lambda t: phishing_run_id(t.message_id))
        await workflow.execute_activity_method(
            PhishingActivities.mailbox_mark_processed, MarkProcessed(mailbox_ids=[trigger.mailbox_id]),
            start_to_close_timeout=_SECONDS_30)
        return IntakeReport(run_id=phishing_run_id(trigger.message_id), already=bool(report.already))
