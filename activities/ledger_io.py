"""Every ledger call an async activity makes runs here, off the worker's event loop.

Why: the ledger's interface is synchronous (SQLite is, and one interface serves both
backends, the CLI and the trust reports), while a worker's activities, heartbeats, polls
and workflow tasks share one event loop. A ledger call on that loop — a disk write on
SQLite, a round trip and a wait for the chain's write lock on PostgreSQL — would stall
them all. `off_loop` runs the call in a pool of its own, sized to the PostgreSQL
connection pool, so ledger calls run in parallel with each other and with everything on
the loop, and no other `to_thread` user can starve them (or be starved by them).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from handrail.gate.ledger_postgres import POOL_SIZE

T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="handrail-ledger")


async def off_loop(call: Callable[..., T], *args, **kwargs) -> T:
    """`call(*args, **kwargs)` in the ledger's thread pool; the loop stays free while it runs."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(call, *args, **kwargs))
