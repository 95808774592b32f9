"""Histories recorded by an earlier version of the worker still replay on this one.

`tests/test_replay.py` records and replays with the same code; this file keeps histories
recorded by earlier commits (named by commit in tests/data), so that a change to the
gate's command sequence, or to what the sandbox passes through, that would break runs
still in flight during a deploy fails here (guard such a change with `workflow.patched`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from tests.test_replay import replayer

pytestmark = pytest.mark.workflow

DATA = Path(__file__).parent / "data"

# file -> the workflow id it was recorded under (the requester's signature names it)
RECORDED = {
    # a guarded one-step egress block with a signed request, recorded by `handrail bench runbooks`
    # at 076cbd7, before the runbook workflow modules were passed through the sandbox
    "egress_block_guarded_076cbd7.history.json": "gate-0-0",
    # recorded at c571755, the last commit whose steps were always two activities (check_step, then
    # apply_change); a step no person need decide is now one: these runs must still replay as they ran
    "egress_block_guarded_ttl_c571755.history.json": "recorded-guarded-ttl",  # with its TTL handed on
    "egress_block_awaiting_c571755.history.json": "recorded-approved",  # in flight: waiting for approval
    "egress_block_approved_c571755.history.json": "recorded-approved",  # then approved and applied
    # recorded at a7e3d18: a step applied by its check (one activity), and one whose check met a
    # firewall outage and handed the decided change to the patient apply
    "egress_block_one_trip_a7e3d18.history.json": "recorded-one-trip",
    "egress_block_one_trip_outage_a7e3d18.history.json": "recorded-one-trip-outage",
}


@pytest.mark.parametrize("name", sorted(RECORDED))
async def test_a_history_recorded_by_an_earlier_version_replays(name):
    history = WorkflowHistory.from_json(RECORDED[name], (DATA / name).read_text())
    await replayer().replay_workflow(history)
