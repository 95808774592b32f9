"""Shared state on the PostgreSQL ledger: the hand-over is one server-function call there
(`handrail_keep_change`), exercised here by the real gate and lab firewall end to end."""

from __future__ import annotations

import pytest

from handrail.gate.ledger_postgres import PostgresLedger
from handrail.gate.models import StepState
from tests.pg_support import new_database
from tests.support import make_policy, running_stack
from tests.test_shared_state import IP, blocked_by, events, roll_back

pytestmark = pytest.mark.postgres


async def test_a_hand_over_and_the_final_undo_on_postgres(time_env, tmp_path, postgres_url):
    url = new_database(postgres_url)
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged"),
                             ledger_factory=lambda settings: PostgresLedger(url)) as stack:
        first, mine = await blocked_by(stack)
        second, theirs = await blocked_by(stack, state=StepState.UNCHANGED)
        _, report = await roll_back(stack, first.id)
        assert (report.results[0].kept, report.results[0].held_by_change) == ("handed_over", theirs)
        assert IP in await stack.edl() and events(stack, first.id, "change.reverted")[0]["kept"] == "handed_over"
        assert stack.ledger.verified_change(theirs).inherited_from == mine and stack.ledger.verify().ok
        _, report = await roll_back(stack, second.id)
        assert report.results[0].reverted and report.results[0].verified and IP not in await stack.edl()
        assert stack.ledger.verify().ok
