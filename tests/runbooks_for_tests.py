"""Small real runbooks that exercise the gate in ways the shipped runbooks do not (yet).

They are ordinary workflows built on the same `RunbookWorkflow` and gate: not mocks.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from handrail.gate.models import Change, RunStatus

from workflows.gate import RunbookWorkflow


class BlockMany(BaseModel):
    targets: list[str]
    requested_by: str = "tester"
    pause_after_first_s: float = 0
    kind: str = "firewall.egress_block"


@workflow.defn(name="BlockManyRunbook")
class BlockManyRunbook(RunbookWorkflow):
    """Blocks each target in turn; an invalid target makes the tool refuse that step."""

    @workflow.run
    async def run(self, trigger: BlockMany) -> RunStatus:
        async with self.runbook("test-block-many", trigger.requested_by, ",".join(trigger.targets)) as rb:
            for i, target in enumerate(trigger.targets):
                await rb.change(Change(kind=trigger.kind, target=target, params={"comment": "test"}))
                if i == 0 and trigger.pause_after_first_s:
                    await workflow.sleep(timedelta(seconds=trigger.pause_after_first_s))
        return rb.report()


class Launch(BaseModel):
    workflow: str
    run_id: str
    trigger: dict


@workflow.defn(name="TestServiceLauncher")
class ServiceLauncher:
    """Starts a runbook as a child, the way Handrail's pollers do: the run is the service's own
    (requester `mailbox`, `dlp-poller`, …) without a person's signature."""

    @workflow.run
    async def run(self, launch: Launch) -> str:
        # It waits for its child: the time-skipping test server stops skipping time for good
        # when a parent closes before its abandoned child does.
        await workflow.execute_child_workflow(launch.workflow, launch.trigger, id=launch.run_id,
                                              parent_close_policy=workflow.ParentClosePolicy.ABANDON)
        return launch.run_id
