"""run_command: a tool's command line never outlives the call that started it."""

from __future__ import annotations

import asyncio

import pytest

from handrail.tools.errors import Unavailable
from handrail.tools.process import run_command

pytestmark = pytest.mark.unit


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/status").read().split("State:")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


async def _pid_of(tmp_path, task) -> int:
    pid_file = tmp_path / "pid"
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip():
            return int(pid_file.read_text())
        await asyncio.sleep(0.01)
    task.cancel()
    raise AssertionError("the command did not start")


async def test_a_cancelled_call_kills_its_command(tmp_path):
    task = asyncio.create_task(run_command(["sh", "-c", f"echo $$ > {tmp_path}/pid; exec sleep 30"], timeout=60))
    pid = await _pid_of(tmp_path, task)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _alive(pid)


async def test_a_command_over_its_time_is_killed_and_retryable(tmp_path):
    task = asyncio.create_task(run_command(["sh", "-c", f"echo $$ > {tmp_path}/pid; exec sleep 30"], timeout=0.5))
    pid = await _pid_of(tmp_path, task)
    with pytest.raises(Unavailable) as exc:
        await task
    assert exc.value.retryable and exc.value.code == "timeout" and not _alive(pid)
