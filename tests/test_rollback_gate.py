"""Undoing is a change too: rollback through the gate, and only from records the chain vouches for."""

from __future__ import annotations

import sqlite3

import pytest

from handrail.gate.models import EgressBlockTrigger, RunState, StepState
from tests.support import make_policy, running_stack
from workflows.egress_block import EgressBlock

pytestmark = pytest.mark.workflow

IP = "203.0.113.7"
BLOCK_THE_CRM = ("UPDATE changes SET body = json_set(body, '$.inverse.kind', 'firewall.egress_block',"
                 " '$.inverse.target', '161.71.0.0/16')")


def tamper(stack, sql: str) -> None:
    db = sqlite3.connect(stack.settings.ledger_path)
    db.execute(sql)
    db.commit()
    db.close()


def block(by: str = "alice", ttl_s: float | None = None) -> EgressBlockTrigger:
    return EgressBlockTrigger(ip=IP, reason="C2 beacon", requested_by=by, ttl_s=ttl_s)


async def test_expiry_refuses_an_inverse_edited_in_the_ledger(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        handle = await stack.start(EgressBlock.run, block(ttl_s=3600))
        status = await stack.wait_for(handle, lambda s: s.state == RunState.COMPLETED)
        change_id = status.steps[0].change_id
        tamper(stack, BLOCK_THE_CRM)
        result = await handle.result()
        assert result.state == RunState.NEEDS_ATTENTION
        assert result.steps[0].state == StepState.COMPENSATION_FAILED
        assert change_id in result.steps[0].note and "does not verify" in result.steps[0].note
        assert "161.71.0.0/16" not in await stack.edl()
        verdict = stack.ledger.verify()
        assert not verdict.ok and verdict.bad_change == change_id
