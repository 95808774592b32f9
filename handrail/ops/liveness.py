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

import json
import os
import socket
from collections.abc import Collection
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

if TYPE_CHECKING:
    from handrail.ops.config import Settings

RECENT = timedelta(seconds=90)  # a live worker long-polls about once a minute at most
STOPPED_FILE = "worker-stopped.json"  # the worker `handrail down` (or a supervisor) stopped last


def identity(pid: int, host: str | None = None) -> str:
    """The identity Temporal's SDK gives a worker process (its poller's name): `<pid>@<host>`."""
    return f"{pid}@{host or socket.gethostname()}"


def pid_namespace() -> str | None:
    """Which pid namespace this process sees (Linux): pids recorded in another mean nothing here."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def here() -> dict[str, Any]:
    """Where a stack's pids are valid: `handrail up` records it with them (stack.json)."""
    return {"host": socket.gethostname(), "pid_namespace": pid_namespace()}


def _same_stack(doc: dict[str, Any], settings: Settings) -> bool:
    """Whether a record describes a worker of this Temporal namespace and task queue."""
    return (doc.get("temporal_address"), doc.get("namespace"), doc.get("task_queue")) == (
        settings.temporal_address, settings.namespace, settings.task_queue)


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def note_stopped(settings: Settings, pid: int, at: datetime | None = None) -> None:
    """Remember the worker just stopped, for `gone_workers` (its stack record is removed with it)."""
    doc = {"identity": identity(pid), "at": (at or datetime.now(timezone.utc)).isoformat(),
           "temporal_address": settings.temporal_address, "namespace": settings.namespace,
           "task_queue": settings.task_queue}
    path = settings.home / STOPPED_FILE
    try:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # the poll time still tells, within RECENT


def gone_workers(settings: Settings, now: datetime | None = None) -> set[str]:
    """Poller identities of this machine's stack workers known to be gone: the recorded worker
    whose process no longer runs that command, and the one stopped within RECENT."""
    from handrail.ops.stack import is_running

    now = now or datetime.now(timezone.utc)
    gone: set[str] = set()
    record = _read(settings.home / "stack.json")
    mine = _same_stack(record, settings) and record.get("host") and all(
        record.get(key) == value for key, value in here().items())  # its pids are this machine's
    worker = (record.get("components") or {}).get("worker") if mine else None
    if isinstance(worker, dict) and isinstance(worker.get("pid"), int) and worker["pid"] > 0:
        if not is_running(worker["pid"], list(worker.get("cmd") or [])):
            gone.add(identity(worker["pid"], record["host"]))
    stopped = _read(settings.home / STOPPED_FILE)
    try:
        at = datetime.fromisoformat(str(stopped.get("at")))
    except ValueError:
        at = None
    if at is not None and _same_stack(stopped, settings) and timedelta(0) <= now - at <= RECENT:
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
