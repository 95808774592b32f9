"""A refused or checked `handrail run` leaves no `preflight-*` workflow in Temporal's list (dev server)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from handrail.gate.preflight import PreflightRequest
from starter import preflight
from starter.output import CliError
from tests.support import make_policy, running_stack
from workflows.preflight import Preflight

pytestmark = pytest.mark.integration


async def _preflights(client, task_queue: str) -> list[str]:
    query = f'WorkflowType = "Preflight" AND TaskQueue = "{task_queue}"'
    return [w.id async for w in client.list_workflows(query)]


async def test_refused_and_accepted_checks_leave_no_workflow_behind(dev_env, tmp_path):
    async with running_stack(dev_env.client, tmp_path, make_policy(mode="approve")) as stack:
        settings, client = stack.settings, dev_env.client
        with pytest.raises(CliError, match="Refused before starting"):
            await preflight.check(client, settings, PreflightRequest(
                runbook="egress-block", changes=[preflight.egress_change("10.0.0.1", "test")]))
        accepted = await preflight.check(client, settings, PreflightRequest(
            runbook="egress-block", changes=[preflight.egress_change("203.0.113.9", "test")]))
        assert accepted is not None and not accepted.refusals
        # A control started after both checks: once the list shows it, it would show them too.
        control = await client.start_workflow(Preflight.run, PreflightRequest(runbook="egress-block"),
                                              id=f"preflight-control-{uuid.uuid4().hex[:8]}",
                                              task_queue=settings.task_queue)
        deadline = asyncio.get_running_loop().time() + 10
        while (listed := await _preflights(client, settings.task_queue)) != [control.id]:
            assert asyncio.get_running_loop().time() < deadline, listed
            await asyncio.sleep(0.1)
        await preflight.forget(client, control.id)
