"""Run CPU-bound work on hostile input off the worker's event loop, with a deadline.

Why: every workflow task and async activity on a worker shares one event loop; a parse
that runs on it for seconds stalls them all. Here the work runs in a small dedicated
thread pool (not the default executor, so a slow message cannot starve other
``to_thread`` users), the activity heartbeats while it waits, and past the deadline the
caller gets :class:`DeadlineExceeded` and can end the run with a reason. The thread is
not killed (Python cannot), which is why the parsers themselves are linear and capped:
the deadline bounds the *run*, the caps bound the *thread*.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="handrail-offloop")
HEARTBEAT_EVERY_S = 2.0


class DeadlineExceeded(Exception):
    """The work did not finish within its deadline."""


async def run_bounded(fn: Callable[..., T], *args, deadline_s: float,
                      heartbeat_every_s: float = HEARTBEAT_EVERY_S) -> T:
    """``fn(*args)`` in the off-loop pool; heartbeats (inside an activity) while waiting."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(_POOL, fn, *args)
    deadline = loop.time() + deadline_s
    while True:
        left = deadline - loop.time()
        if left <= 0:
            future.cancel()  # only drops it if it has not started yet
            raise DeadlineExceeded(f"not finished within {deadline_s:g} s")
        done, _ = await asyncio.wait({future}, timeout=min(left, heartbeat_every_s))
        if done:
            return future.result()
        if activity.in_activity():
            activity.heartbeat("working")
