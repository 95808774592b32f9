"""Is any worker serving the task queue? Answered by Temporal itself, without a worker.

`handrail pending` and `handrail show` must answer while the workers are down: they list
waiting runs from visibility and rebuild timelines from the ledger, and they say plainly
that no worker is polling (decisions are still kept by Temporal and judged later).
A poller counts as live if it polled recently: a killed worker lingers in
DescribeTaskQueue for minutes, but its `last_access_time` stops moving.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

RECENT = timedelta(seconds=90)  # a live worker long-polls about once a minute at most


async def live_pollers(client: Client, task_queue: str, now: datetime | None = None) -> int | None:
    """How many workers polled the workflow task queue recently; None if Temporal cannot tell."""
    try:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=timedelta(seconds=5),
        )
    except Exception:
        return None
    now = now or datetime.now(timezone.utc)
    count = 0
    for poller in response.pollers:
        if not poller.HasField("last_access_time"):
            count += 1
            continue
        seen = poller.last_access_time.ToDatetime(tzinfo=timezone.utc)
        if now - seen <= RECENT:
            count += 1
    return count


def no_worker_sentence(task_queue: str) -> str:
    return (f"No worker is polling task queue {task_queue}: decisions sent now are kept and judged "
            "when a worker runs (`handrail up`).")
