"""Turning new items from a source (mailbox, DLP, IAM, NAC) into one run each.

A poller workflow is started by a Temporal Schedule. It asks an activity for the new items
(as typed triggers), then starts one runbook run per item with an id derived from the
item, so an item seen twice — forwarded twice, polled twice — still runs once. Runs are
started as abandoned children: the poller finishes in seconds and its history stays
small, while each run lives its own life.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from workflows.gate import start_attributes


class PollReport(BaseModel):
    source: str
    seen: int = 0
    started: list[str] = Field(default_factory=list)
    already: list[str] = Field(default_factory=list)


async def start_runs(
    source: str,
    run: Callable[..., Any],
    triggers: Sequence[BaseModel],
    run_id: Callable[[Any], str],
    runbook: str | None = None,
) -> PollReport:
    """Start `run` once per trigger; a trigger whose run id exists already is skipped.

    Given the `runbook` name, each run starts with its search attributes set (see
    `workflows.gate.start_attributes`), which spares it an upsert.
    """
    report = PollReport(source=source, seen=len(triggers))
    for trigger in triggers:
        rid = run_id(trigger)
        attributes = start_attributes(runbook, trigger.requested_by) if runbook else None
        try:
            await workflow.start_child_workflow(
                run,
                trigger,
                id=rid,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=attributes,
            )
            report.started.append(rid)
        except WorkflowAlreadyStartedError:
            report.already.append(rid)
    return report
