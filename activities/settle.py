"""Write-ahead changes and settling unknown outcomes (issue 15).

Before a tool is called, the ledger holds the change's intent: the before-state, the wanted
state and the inverse computed from them, with status `pending`. Whatever then happens to
the call — a timeout, a lost response, a 503 after the tool accepted it, an error answered
to a replay, a failed after-read — the tool itself is the judge: it is read again and the
record is settled as `applied` (with its inverse) or `not_applied`. A run therefore never
reports "nothing changed" while a tool holds its change, and rollback finds the inverse.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from temporalio import activity

from activities.ledger_io import off_loop
from handrail.gate.ledger import Ledger
from handrail.gate.models import ChangeRecord
from handrail.tools.errors import ToolError


async def settle(ledger: Ledger, action: Any, tools: Any, record: ChangeRecord) -> ChangeRecord:
    """Read the tool and settle a pending record: applied (the tool holds it) or not_applied.

    Raises the ToolError of the read when the tool cannot be read: the outcome stays unknown
    and the record stays pending with its inverse, for the next attempt to settle.
    """
    if record.status != "pending":
        return record
    current = await action.read(tools, record.change)
    if action.wanted(record.change, current):
        record.status, record.after = "applied", current
        record.inverse = record.inverse or action.inverse(record.change, record.before)
    else:
        record.status, record.after, record.inverse = "not_applied", current, None
    await off_loop(ledger.finish_change, record)
    return record


async def apply_written_ahead(ledger: Ledger, action: Any, tools: Any, record: ChangeRecord,
                              key: str, retried: bool) -> ChangeRecord:
    """Call the tool for a record already written ahead, then settle it by the tool's word:
    its answer to the write when that states the after-state, otherwise a read.

    `retried`: an earlier attempt wrote the record, so the tool may already hold the change;
    reading first avoids asking it twice. A tool error is final only if, read afterwards,
    the tool does not hold the change (the replay of a request that did succeed may answer
    an error, e.g. 409 "already present").
    """
    if retried:
        current = await action.read(tools, record.change)
        if action.wanted(record.change, current):
            record.status, record.after = "applied", current
            await off_loop(ledger.finish_change, record)
            return record
    answered = None
    try:
        answered = await action.apply(tools, record.change, key)
    except ToolError as exc:
        try:
            current = await action.read(tools, record.change)
        except ToolError:
            raise exc from None  # unknown outcome: stays pending, the retry settles it
        if not action.wanted(record.change, current):
            if not exc.retryable:
                record.status, record.after, record.inverse = "not_applied", current, None
                await off_loop(ledger.finish_change, record)
            raise
        answered = current  # the tool holds the change although the call reported an error: it is applied
    record.status = "applied"
    # The tool's own answer to the write, when it states the wanted state; otherwise ask it.
    wanted = answered is not None and action.wanted(record.change, answered)
    record.after = answered if wanted else await action.read(tools, record.change)
    await off_loop(ledger.finish_change, record)
    return record


HEARTBEAT_EVERY_S = 2.0


@contextlib.asynccontextmanager
async def heartbeating(every_s: float = HEARTBEAT_EVERY_S) -> AsyncIterator[None]:
    """Heartbeat while a tool call is in flight, so a killed worker is noticed in seconds
    (the heartbeat timeout), not after the whole start-to-close timeout.

    The first beat comes `every_s` after the start, not at once: the server counts the
    heartbeat timeout from the attempt's start, so an immediate beat adds nothing to that
    guarantee, while it costs every call (most finish in milliseconds) a heartbeat RPC and
    a history-state write on the server."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            activity.heartbeat()

    task = asyncio.ensure_future(beat()) if activity.in_activity() else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
