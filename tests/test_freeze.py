"""Change freezes: during a `[[freeze]]` window every change holds for a human, whatever its mode."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from handrail.gate.freeze import FreezeWindow, active_freeze
from handrail.gate.models import EgressBlockTrigger, RunState, StepState
from handrail.gate.policy import PolicyError, parse_policy
from tests.support import USERS, make_policy, running_stack, send_decision
from workflows.egress_block import EgressBlock

FRIDAY_EVENING = {"reason": "weekend release", "weekly": {"days": ["fri"], "from": "16:00", "until": "23:59"}}
OVERNIGHT = {"reason": "batch window", "weekly": {"days": ["mon"], "from": "22:00", "until": "06:00"}}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.unit
@pytest.mark.parametrize("window, when, active", [
    (FRIDAY_EVENING, "2026-11-27T17:00", True),   # a Friday
    (FRIDAY_EVENING, "2026-11-27T15:59", False),
    (FRIDAY_EVENING, "2026-11-28T17:00", False),  # Saturday
    (OVERNIGHT, "2026-11-30T23:00", True),        # Monday night
    (OVERNIGHT, "2026-12-01T05:59", True),        # ... into Tuesday morning
    (OVERNIGHT, "2026-12-01T06:00", False),
    ({"reason": "year end", "start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z"}, "2026-12-24T12:00", True),
    ({"reason": "year end", "start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z"}, "2027-01-04T00:00", False),
    ({**FRIDAY_EVENING, "timezone": "Asia/Tokyo"}, "2026-11-27T08:00", True),  # 17:00 in Tokyo
])
def test_windows(window, when, active):
    assert (active_freeze([FreezeWindow.model_validate(window)], at(when)) is not None) is active


@pytest.mark.unit
@pytest.mark.parametrize("block, words", [
    ('reason = "x"\nweekly = { days = ["fri"], from = "25:00", until = "23:00" }', "is not a time of day"),
    ('reason = "x"\nstart = 2026-12-20T00:00:00Z\nend = 2026-12-01T00:00:00Z', "must end after it starts"),
    ('reason = "x"', "needs start and end, or weekly"),
    ('reason = "x"\nweekly = { days = ["fri"], from = "16:00", until = "18:00" }\ntimezone = "Mars/Olympus"',
     "not a known time zone"),
])
def test_a_bad_freeze_is_one_sentence(block, words):
    with pytest.raises(PolicyError, match=words):
        parse_policy(USERS + "\n[[freeze]]\n" + block + "\n")


def freeze_around_now(hours: float) -> str:
    """A dated freeze from an hour ago, lasting `hours` (negative: one that ended before now)."""
    now = datetime.now(timezone.utc)
    start, end = (now - timedelta(hours=1), now + timedelta(hours=hours)) if hours > 0 else (
        now - timedelta(hours=10), now - timedelta(hours=9))
    return (f'\n[[freeze]]\nreason = "quarter-end close"\nstart = {start.isoformat(timespec="seconds")}\n'
            f'end = {end.isoformat(timespec="seconds")}\n')


@pytest.mark.workflow
@pytest.mark.parametrize("mode", ["logged", "guarded"])
async def test_automatic_kinds_hold_during_a_freeze(time_env, tmp_path, mode):
    async with running_stack(time_env.client, tmp_path, make_policy(mode=mode) + freeze_around_now(24)) as stack:
        handle = await stack.start(EgressBlock.run, EgressBlockTrigger(ip="203.0.113.7", reason="C2",
                                                                      requested_by="alice"))
        waiting = await stack.wait_for(handle, lambda s: s.state == RunState.AWAITING_APPROVAL)
        [verdict] = waiting.pending_step().verdicts
        assert verdict.guardrail == "change_freeze" and "quarter-end close" in verdict.reason
        assert "203.0.113.7" not in await stack.edl()
        await send_decision(handle, "bob", reason="contain it anyway")
        result = await handle.result()
        assert result.steps[0].state == StepState.APPLIED and "203.0.113.7" in await stack.edl()


@pytest.mark.workflow
async def test_outside_a_freeze_automatic_kinds_run_on(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded") + freeze_around_now(-1)) as stack:
        handle = await stack.start(EgressBlock.run, EgressBlockTrigger(ip="203.0.113.8", reason="C2",
                                                                      requested_by="alice"))
        result = await handle.result()
        assert result.state == RunState.COMPLETED and result.steps[0].state == StepState.APPLIED
        assert result.steps[0].verdicts == []
