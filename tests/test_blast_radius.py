"""Blast-radius limits that cannot overshoot: the gate's check counts and reserves in one step.

Steps of one kind checked at the same instant (on one worker here; across processes in
tests/test_ledger_backends.py) must not all see "one below the limit": exactly `per_hour`
of them pass the rate_limit guardrail, and a step the ledger did not reserve for is one
the guardrail holds.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

import pytest

from activities.context import WorkerContext
from activities.gate import GateActivities
from handrail.gate import guardrails
from handrail.gate.blast_radius import step_limits
from handrail.gate.models import Change, CheckRequest, Outcome
from handrail.ops.config import load_settings
from tests.ledger_backends import BACKENDS, open_backend
from tests.support import make_policy


@pytest.mark.unit
def test_limits_are_the_ones_the_guardrails_apply():
    rails = [{"type": "rate_limit", "per_hour": 9}, {"type": "rate_limit"}, {"type": "never_block"}]
    assert step_limits(rails, {}) == (9.0, None)
    assert step_limits(rails + [{"type": "per_run_limit"}], {"rate_limit": 4.0}) == (4.0, 20.0)
    assert step_limits([{"type": "never_block"}], {}) == (None, None)


@pytest.fixture(params=BACKENDS)
def gate(request, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(make_policy(mode="guarded", guardrails='{ type = "rate_limit", per_hour = 3 },'
                                                             ' { type = "per_run_limit", per_run = 2 }'))
    settings = load_settings({"HANDRAIL_HOME": str(tmp_path), "HANDRAIL_POLICY": str(policy)})
    ledger = open_backend(request.param, tmp_path, request)
    yield GateActivities(WorkerContext.build(settings, SimpleNamespace(), ledger=ledger))
    ledger.close()


async def test_steps_checked_at_once_never_pass_the_limit_together(gate):
    change = Change(kind="firewall.egress_block", target="203.0.113.7")
    requests = [CheckRequest(run_id=f"run-{i % 4}", step_id=f"s{i}", change=change) for i in range(10)]
    checks = await asyncio.gather(*(gate.check_step(r) for r in requests))
    passed = [r for r, c in zip(requests, checks, strict=True)
              if guardrails.overall(guardrails.evaluate(change, c.context)) == Outcome.ALLOW]
    assert len(passed) == 3  # ten steps at once, a limit of 3 per hour
    assert max(Counter(r.run_id for r in passed).values()) <= 2  # and never more than 2 in one run
    again = await gate.check_step(passed[0])  # a retried check does not count its own reservation
    assert guardrails.overall(guardrails.evaluate(change, again.context)) == Outcome.ALLOW
