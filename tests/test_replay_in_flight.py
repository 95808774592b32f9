"""Runs begun by an earlier release replay on this one, where workflow-side code has changed since.

Each history in tests/data was recorded by a worker of the commit named in its file name,
with `tests/record_in_flight.py` run from a checkout of that commit (its docstring says
how): the old code itself, not today's with a patch forced off, so the history is what an
in-flight run carries into a deploy. Each is replayed here with `Replayer`, the worker's
workflow list and sandbox (`handrail.ops.sandbox.workflow_runner`) and the pydantic data
converter (`tests.test_replay.replayer`). Without its guard, each fails with a
NondeterminismError: the new code issues other commands for the same history.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from tests.runbooks_for_tests import BlockManyRunbook
from tests.test_replay import replayer
from worker import WORKFLOWS

pytestmark = pytest.mark.workflow

DATA = Path(__file__).parent / "data"


async def replay(name: str, workflow_id: str) -> None:
    history = WorkflowHistory.from_json(workflow_id, (DATA / name).read_text())
    await replayer([*WORKFLOWS, BlockManyRunbook]).replay_workflow(history)


async def test_a_privilege_run_whose_starter_approved_replays():
    """Recorded at 3ae8ef3: bob starts the privilege guard by hand and approves its recommit,
    which that release allowed (only the affected principal, the run's requester, was refused).
    Since 2f7b286 the starter may not decide; replayed under that rule, bob's approval is
    refused, the step goes on waiting and the run fails. Guard: `STARTER_NOT_DECIDER`
    (workflows/gate.py) keeps the old rule, notices included, for a run that waited before it."""
    await replay("privilege_recommit_by_starter_3ae8ef3.history.json", "recorded-privilege-starter")


async def test_an_answered_dlp_question_replays():
    """Recorded at 3ae8ef3: no rule covers DLP-0003, so the run asks the analyst question, and
    bob answers it. The question's `why_asked` is the classification's sentence, which has
    since grown (severity, matches, destination): the step's change digest changes with it,
    bob's signature no longer names the step, and the run fails. Guard:
    `handrail-dlp-strict-destination` (workflows/exfiltration.py) with `classify_as_begun`."""
    await replay("dlp_question_answered_3ae8ef3.history.json", "recorded-dlp-question")


async def test_a_dlp_run_classified_by_the_loose_destination_reading_replays():
    """Recorded at 67b6f03 (the last commit of 745235d's loose reading): a rule trusts
    partner.example and the alert went to 'drop@evil.example, jo@partner.example', which the
    last address made inadvertent (training). Read strictly, every recipient must match: no
    rule does, the run would ask the analyst instead, and it fails. Guard: as above."""
    await replay("dlp_destination_loose_67b6f03.history.json", "recorded-dlp-loose")


async def test_a_dlp_run_classified_by_the_first_address_replays():
    """Recorded at 51e3f15 (the last commit of 839c4e5's strict reading of one address):
    `internal = true` trusted 'me@corp.example, drop@evil.example' by its first address.
    Since 8b0d5ab every recipient must be inside: the run would ask the analyst instead,
    and it fails. Guard: as above."""
    await replay("dlp_internal_first_address_51e3f15.history.json", "recorded-dlp-first-address")


async def test_a_sinkhole_judged_before_covering_names_were_refused_replays():
    """Recorded at 3ae8ef3, before checks recorded their verdicts (22098cd): the workflow
    evaluates the guardrails again on replay. The sinkhole of parcel-fees.example, whose
    never_touch lists track.parcel-fees.example, waited for an approver and bob approved it;
    today's never_touch refuses a name covering a listed one, so the replay refuses the step
    instead of waiting, and fails. Guard: `guardrails.evaluate_unrecorded` judges a check
    without verdicts as its release read targets."""
    await replay("sinkhole_covering_name_approved_3ae8ef3.history.json", "recorded-sinkhole-covering")
