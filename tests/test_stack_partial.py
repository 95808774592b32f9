"""`handrail up` on a partly running stack starts only what is missing (issue 15, item 8).

Real processes: the worker is killed with SIGKILL (as an OOM killer or `kill -9` would),
then the lab too; `up` again keeps Temporal and starts the two others.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from handrail.ops import stack
from handrail.ops.config import load_settings
from handrail.ops.liveness import live_pollers, live_workers
from handrail.ops.temporal import connect
from tests.test_stack import assert_healthy, pid_gone, stack_env

pytestmark = pytest.mark.e2e


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while not pid_gone(pid):
        assert time.monotonic() < deadline, f"pid {pid} did not die"
        time.sleep(0.05)


async def test_up_restarts_only_the_killed_components(tmp_path: Path) -> None:
    settings = load_settings(stack_env(tmp_path / "p", "handrail-partial"))
    try:
        first = await asyncio.to_thread(stack.start, settings, True)
        client = await connect(settings)
        assert await live_workers(client, settings) == 1
        os.kill(first.pids["worker"], signal.SIGKILL)
        await asyncio.to_thread(_wait_gone, first.pids["worker"])
        # Temporal lists the dead worker's poller for a while yet; the stack's record says it is gone
        assert await live_pollers(client, settings.task_queue) == 1
        assert await live_workers(client, settings) == 0

        second = await asyncio.to_thread(stack.start, settings, True)
        assert second.pids["temporal"] == first.pids["temporal"]
        assert second.pids["lab"] == first.pids["lab"]
        assert second.pids["worker"] != first.pids["worker"]
        assert second.started_at == first.started_at
        await asyncio.to_thread(assert_healthy, settings, second.pids)

        os.kill(second.pids["lab"], signal.SIGKILL)
        await asyncio.to_thread(_wait_gone, second.pids["lab"])
        third = await asyncio.to_thread(stack.start, settings, True)
        assert third.pids["temporal"] == first.pids["temporal"] and third.pids["worker"] == second.pids["worker"]
        assert third.pids["lab"] != second.pids["lab"]
        await asyncio.to_thread(assert_healthy, settings, third.pids)

        with pytest.raises(stack.StackError, match="A stack is already running from"):
            await asyncio.to_thread(stack.start, settings, True)
        lines = await asyncio.to_thread(stack.stop, settings)
        assert [line.split()[1] for line in lines] == ["worker", "lab", "temporal"]
        assert all(pid_gone(pid) for pid in third.pids.values())
    finally:
        await asyncio.to_thread(stack.stop, settings)
