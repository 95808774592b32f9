"""The stack's record of its worker process, as liveness reads it: where the recorded pids are
valid (host and pid namespace), the identity Temporal gives that worker's pollers, and the
worker `handrail down` stopped last (its record goes with it).

Written by the stack (`handrail.ops.stack`), read by `handrail.ops.liveness`; kept apart so
that neither imports the other.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handrail.ops.config import Settings

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


def same_stack(doc: dict[str, Any], settings: Settings) -> bool:
    """Whether a record describes a worker of this Temporal namespace and task queue."""
    return (doc.get("temporal_address"), doc.get("namespace"), doc.get("task_queue")) == (
        settings.temporal_address, settings.namespace, settings.task_queue)


def read_record(path: Path) -> dict[str, Any]:
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
