"""The ledger unavailable (the SQLite file locked by another process, PostgreSQL restarting)
just as an approver decides: the decision's audit waits for the ledger instead of ending the
run, so the approved change is applied once the ledger is back, with its audit."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from temporalio.client import WorkflowExecutionStatus

from handrail.gate.ledger import Ledger
from handrail.gate.models import RunState, StepState
from tests.support import running_stack, send_decision, skipping_seconds
from tests.test_nothing_lost_workflow import IP, policy, trigger
from workflows.egress_block import EgressBlock

pytestmark = pytest.mark.workflow


class LockedLedger(Ledger):
    """A ledger whose audit appends fail as a locked SQLite file does, while `locked`."""

    locked = False
    refused = 0

    def append(self, events, **kw):
        if self.locked and events:
            self.refused += 1
            raise sqlite3.OperationalError("database is locked")
        return super().append(events, **kw)


async def test_an_approval_given_while_the_ledger_is_locked_is_applied_once_it_is_back(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, policy(),
                             ledger_factory=lambda s: LockedLedger(s.ledger_path)) as stack:
        ledger: LockedLedger = stack.ledger
        handle = await stack.start(EgressBlock.run, trigger())
        await stack.wait_for(handle, lambda s: s.state == RunState.AWAITING_APPROVAL)
        ledger.locked = True
        await send_decision(handle, "bob")

        async def ledger_outage_outlasts_five_attempts():
            while ledger.refused < 8:
                if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                    return
                await asyncio.sleep(0.05)

        await skipping_seconds(time_env, ledger_outage_outlasts_five_attempts())
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING, "the approved run ended"
        ledger.locked = False
        result = await stack.result(handle)
        assert result.state == RunState.COMPLETED, result.error
        assert result.steps[0].state == StepState.APPLIED
        assert IP in await stack.edl()
        events = [r["event"] for r in ledger.audit_rows(handle.id)]
        assert events.count("approval.decided") == 1 and "run.finished" in events
        assert ledger.verify().ok
