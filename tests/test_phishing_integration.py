"""The mailbox schedule on the real dev server: one phishing run per new message, no duplicates."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from handrail.gate.models import RunState
from handrail.ops import schedules
from handrail.runbooks.phishing.rules import phishing_run_id
from lab.seed import SAMPLES_DIR
from tests.support import running_stack, schedule_results
from workflows.poller import PollReport

pytestmark = pytest.mark.integration

TOP_SITES = Path(__file__).resolve().parent / "data" / "top-sites.csv"  # our own small ranking
POLICY = (Path(__file__).resolve().parents[1] / "policy.toml").read_text().replace(
    "[settings.popular]\n", f'[settings.popular]\npath = "{TOP_SITES}"\n', 1)
PHISHING = SAMPLES_DIR  # our own sample mail: runs with or without ../shared
KEEP = ("lookalike-login.eml", "mixed-brand.eml")  # one high-confidence lure each


async def _eventually(probe, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.2)


async def test_the_mailbox_schedule_starts_one_run_per_message_and_no_duplicates(dev_env, tmp_path):
    client = dev_env.client
    async with running_stack(client, tmp_path, POLICY) as stack:
        keep = {hashlib.sha256((PHISHING / name).read_bytes()).hexdigest() for name in KEEP}
        kept = []
        for message in await stack.tools.mailbox.list_messages():
            if message.sha256 in keep:
                kept.append(message)
            else:
                await stack.tools.mailbox.mark_processed(message.id)  # a small mailbox: two new messages
        assert len(kept) == 2
        run_ids = sorted(phishing_run_id(m.sha256, m.id) for m in kept)
        schedule_id = schedules.definition("mailbox").schedule_id
        try:
            assert await schedules.ensure(client, stack.settings, "mailbox") == "created"
            await schedules.pause(client, "mailbox")  # only our triggers start polls
            await schedules.trigger(client, "mailbox")
            [first] = await schedule_results(client, "mailbox", 1, PollReport)
            assert sorted(first.started) == run_ids and first.already == []
            for run_id in run_ids:
                handle = client.get_workflow_handle(run_id)
                stack.started.append(handle)
                status = await stack.wait_for(handle, lambda s: s.state == RunState.COMPLETED, timeout=30)
                assert status.summary["sinkholed"]
            assert await stack.tools.mailbox.list_messages(status="unprocessed") == []

            # The same message again (forwarded twice): the next poll starts nothing new.
            await stack.tools.mailbox.mark_unprocessed(kept[0].id)
            await schedules.trigger(client, "mailbox")
            _, second = await schedule_results(client, "mailbox", 2, PollReport)
            assert second.started == [] and second.already == [phishing_run_id(kept[0].sha256, kept[0].id)]
            assert await stack.tools.mailbox.list_messages(status="unprocessed") == []
            query = f'WorkflowType = "PhishingResponse" AND TaskQueue = "{stack.settings.task_queue}"'

            async def counted():
                return (await client.count_workflows(query)).count >= 2 and (await client.count_workflows(query)).count

            assert await _eventually(counted) == 2
        finally:
            try:
                await client.get_schedule_handle(schedule_id).delete()
            except Exception:
                pass

