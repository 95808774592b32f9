"""Is any worker serving the task queue? Answered by Temporal itself, without a worker.

`handrail pending` and `handrail show` must answer while the workers are down: they list
waiting runs from visibility and rebuild timelines from the ledger, and they say plainly
that no worker is polling (decisions are still kept by Temporal and judged later).
A poller counts as live if it polled recently: a killed worker lingers in
DescribeTaskQueue for minutes, but its `last_access_time` stops moving.

That alone takes up to RECENT to notice a dead worker. A worker `handrail up` started on
this machine is known better: its pid is in the stack's record (`<home>/stack.json`), and
Temporal names its poller `<pid>@<host>`. If that process is gone (killed, crashed), or
`handrail down` stopped it moments ago (the record is gone then; `<home>/worker-stopped.json`
says which it was), its poller is not counted, at once. Workers on other hosts, or started
otherwise, are only known through Temporal, as before.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from handrail.ops.stack import is_running
from handrail.ops.worker_record import STOPPED_FILE, here, identity, read_record, same_stack

if TYPE_CHECKING:
    from handrail.ops.config import Settings

RECENT = timedelta(seconds=90)  # a live worker long-polls about once a minute at most
def gone_workers(settings: Settings, now: datetime | None = None) -> set[str]:
    """Poller identities of this machine's stack workers known to be gone: the recorded worker
    whose process no longer runs that command, and the one stopped within RECENT."""
    now = now or datetime.now(timezone.utc)
    gone: set[str] = set()
    record = read_record(settings.home / "stack.json")
    mine = same_stack(record, settings) and record.get("host") and all(
        record.get(key) == value for key, value in here().items())  # its pids are this machine's
    worker = (record.get("components") or {}).get("worker") if mine else None
    if isinstance(worker, dict) and isinstance(worker.get("pid"), int) and worker["pid"] > 0:
        if not is_running(worker["pid"], list(worker.get("cmd") or [])):
            gone.add(identity(worker["pid"], record["host"]))
    stopped = read_record(settings.home / STOPPED_FILE)
    try:
        at = datetime.fromisoformat(str(stopped.get("at")))
    except ValueError:
        at = None
    if at is not None and same_stack(stopped, settings) and timedelta(0) <= now - at <= RECENT:
        gone.add(str(stopped.get("identity")))
    return gone


async def live_workers(client: Client, settings: Settings, now: datetime | None = None) -> int | None:
    """`live_pollers` for this installation: a local stack worker known gone is not counted."""
    try:
        gone = gone_workers(settings, now)
    except Exception:  # the record is only a shortcut: never let it hide what Temporal says
        gone = set()
    return await live_pollers(client, settings.task_queue, now, gone=gone)


async def live_pollers(client: Client, task_queue: str, now: datetime | None = None,
                       gone: Collection[str] = ()) -> int | None:
    """How many workers polled the workflow task queue recently; None if Temporal cannot tell.
    Pollers named in `gone` (known dead on this machine: `gone_workers`) are not counted."""
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
        if poller.identity in gone:
            continue
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
