"""No activity touches the ledger on the worker's event loop.

The ledger is synchronous (SQLite, or PostgreSQL through a connection pool); a call on the
loop would stall every activity, heartbeat and workflow task of the worker while it waits
for the disk or the database. This runs a runbook with approvals, a write-ahead change, a
history look-up and a rollback on a worker whose ledger notes any call made on the loop
from inside an activity.
"""

from __future__ import annotations

import asyncio
import traceback
from contextlib import contextmanager

import pytest
from temporalio import activity

from handrail.gate.ledger import Ledger
from handrail.gate.models import RollbackTrigger, RunState
from tests.support import running_stack, send_decision
from tests.test_exfiltration import POLICY, decide, done, start_alert, terminate, waiting_on
from workflows.rollback import RollbackRun, rollback_id

pytestmark = pytest.mark.workflow


class LoopWatchingLedger(Ledger):
    """The SQLite ledger, noting every call an activity makes on the event loop's thread."""

    def __init__(self, path):
        super().__init__(path)
        self.on_loop: list[str] = []

    def _note(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a worker thread: fine
        if activity.in_activity():
            self.on_loop.append("".join(traceback.format_stack(limit=6)))

    @contextmanager
    def _read(self):
        self._note()
        with super()._read() as tx:
            yield tx

    @contextmanager
    def _write(self):
        self._note()
        with super()._write() as tx:
            yield tx

    def read(self, sql, args=()):
        self._note()
        return super().read(sql, args)


async def test_a_runbook_and_its_rollback_never_call_the_ledger_on_the_loop(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY,
                             ledger_factory=lambda s: LoopWatchingLedger(s.ledger_path)) as stack:
        handle = await start_alert(stack, "DLP-0011")  # no rule: an analyst classifies, then isolation
        await decide(stack, handle, "exfiltration.classify_malicious", "bob", True)
        await decide(stack, handle, "edr.isolate", "alice", True)
        status = await stack.wait_for(handle, done)
        try:
            assert status.state == RunState.COMPLETED, status.error
            rollback = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="carol"),
                                         id=rollback_id(handle.id))
            waiting = await stack.wait_for(rollback, waiting_on("edr.release"))
            await send_decision(rollback, "bob", status=waiting)
            assert (await rollback.result()).state == "rolled_back"
            assert stack.ledger.on_loop == [], stack.ledger.on_loop[0]
        finally:
            await terminate(stack, [r for r in status.summary.get("follow_up_runs", [])])
