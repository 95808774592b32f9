"""`handrail pending` knows at once that this machine's stack worker is dead (or just stopped),
instead of waiting RECENT for its last poll to age; other workers are judged by Temporal alone."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.taskqueue.v1 import PollerInfo

from handrail.ops import liveness, worker_record
from handrail.ops.config import load_settings

pytestmark = pytest.mark.unit

NOW = datetime.now(timezone.utc)


def _settings(home: Path, queue: str = "handrail"):
    return load_settings({"HANDRAIL_HOME": str(home), "HANDRAIL_TEMPORAL_ADDRESS": "127.0.0.1:17999",
                          "HANDRAIL_TASK_QUEUE": queue})


def _record(settings, pid: int, cmd: list[str], **where) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    doc = {"temporal_address": settings.temporal_address, "namespace": settings.namespace,
           "task_queue": settings.task_queue, **worker_record.here(), **where,
           "components": {"worker": {"pid": pid, "cmd": cmd}}}
    (settings.home / "stack.json").write_text(json.dumps(doc))


@pytest.fixture
def worker():
    """A process standing in for the stack's worker: (pid, cmd), killed by the test or at the end."""
    cmd = [sys.executable, "-c", "import time; time.sleep(60)"]
    proc = subprocess.Popen(cmd)
    yield proc, cmd
    proc.kill()
    proc.wait()


def test_the_recorded_worker_is_gone_once_its_process_is(tmp_path, worker):
    proc, cmd = worker
    settings = _settings(tmp_path / "home")
    _record(settings, proc.pid, cmd)
    assert liveness.gone_workers(settings) == set()  # running: Temporal's word stands
    proc.kill()
    proc.wait()
    assert liveness.gone_workers(settings) == {f"{proc.pid}@{worker_record.here()['host']}"}


@pytest.mark.parametrize("change", [
    {"host": "another-host"},  # pids recorded on another machine mean nothing here
    {"pid_namespace": "pid:[1]"},  # nor in another pid namespace (a container)
    {"host": None},  # a record from before hosts were recorded: no shortcut
])
def test_a_record_from_elsewhere_is_never_read_as_a_dead_worker(tmp_path, worker, change):
    proc, cmd = worker
    settings = _settings(tmp_path / "home")
    _record(settings, proc.pid, cmd, **change)
    proc.kill()
    proc.wait()
    assert liveness.gone_workers(settings) == set()


def test_a_record_of_another_task_queue_is_not_this_ones(tmp_path, worker):
    proc, cmd = worker
    _record(_settings(tmp_path / "home", "other-queue"), proc.pid, cmd)
    proc.kill()
    proc.wait()
    assert liveness.gone_workers(_settings(tmp_path / "home")) == set()


def test_a_worker_just_stopped_is_gone_until_its_last_poll_is_old_anyway(tmp_path):
    settings = _settings(tmp_path / "home")
    settings.home.mkdir(parents=True)
    worker_record.note_stopped(settings, 4242, at=NOW)
    me = f"4242@{worker_record.here()['host']}"
    assert liveness.gone_workers(settings, NOW + timedelta(seconds=1)) == {me}
    assert liveness.gone_workers(settings, NOW + liveness.RECENT + timedelta(seconds=1)) == set()
    assert liveness.gone_workers(_settings(tmp_path / "home", "other-queue"), NOW) == set()


class _Service:
    def __init__(self, pollers):
        self.pollers = pollers

    async def describe_task_queue(self, request, timeout=None):
        return type("Response", (), {"pollers": self.pollers})()


class _Client:
    namespace = "default"

    def __init__(self, *identities: str):
        seen = Timestamp()
        seen.FromDatetime(NOW.replace(tzinfo=None))
        self.workflow_service = _Service([PollerInfo(identity=i, last_access_time=seen) for i in identities])


async def test_pending_says_no_worker_at_once_when_the_only_poller_is_the_dead_local_worker(tmp_path, worker):
    proc, cmd = worker
    settings = _settings(tmp_path / "home")
    _record(settings, proc.pid, cmd)
    local = worker_record.identity(proc.pid)
    proc.kill()
    proc.wait()
    # Temporal still lists its poller, last seen a moment ago
    assert await liveness.live_pollers(_Client(local), settings.task_queue, NOW) == 1
    assert await liveness.live_workers(_Client(local), settings, NOW) == 0
    # a worker on another host is only known through Temporal: it still counts
    assert await liveness.live_workers(_Client(local, "4242@worker-2.example"), settings, NOW) == 1
