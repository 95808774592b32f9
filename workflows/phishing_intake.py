"""Start a phishing run for a reported message on behalf of the CLI, which holds no tool token.

The intake's activity finds (or delivers) the message with the worker's tool clients; the
run is then started as an abandoned child with the id derived from its content hash and
mailbox entry (the same message twice still runs once) and the message is marked processed, as the poller does.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.phishing import PhishingActivities
    from activities.phishing_intake import IntakeRequest, PhishingIntakeActivities
    from handrail.runbooks.phishing.rules import RUNBOOK, MarkProcessed

from workflows.gate import READ_OPTS, TOOL_OPTS
from workflows.phishing import PhishingResponse
from workflows.poller import start_runs


class IntakeReport(BaseModel):
    run_id: str
    already: bool = False


@workflow.defn(name="PhishingIntake")
class PhishingIntake:
    @workflow.run
    async def run(self, request: IntakeRequest) -> IntakeReport:
        trigger = await workflow.execute_activity_method(
            PhishingIntakeActivities.phishing_intake, request, **READ_OPTS)
        report = await start_runs("cli", PhishingResponse.run, [trigger], lambda t: t.run_id(), runbook=RUNBOOK)
        await workflow.execute_activity_method(
            PhishingActivities.mailbox_mark_processed, MarkProcessed(mailbox_ids=[trigger.mailbox_id]),
            **TOOL_OPTS)
        return IntakeReport(run_id=trigger.run_id(), already=bool(report.already))
