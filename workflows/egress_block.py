"""Runbook: block an IP address or network on the egress firewall (the seed's blacklist example)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from handrail.gate.models import Change, EgressBlockTrigger, RunStatus

from workflows.gate import RunbookWorkflow

RUNBOOK = "egress-block"


@workflow.defn(name="EgressBlock")
class EgressBlock(RunbookWorkflow):
    @workflow.run
    async def run(self, trigger: EgressBlockTrigger) -> RunStatus:
        async with self.runbook(RUNBOOK, trigger.requested_by, subject=trigger.ip, trigger=trigger) as rb:
            await rb.change(
                Change(kind="firewall.egress_block", target=trigger.ip, params={"comment": trigger.reason}),
                expires_after=timedelta(seconds=trigger.ttl_s) if trigger.ttl_s else None,
            )
        return rb.report()
