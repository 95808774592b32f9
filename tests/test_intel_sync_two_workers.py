"""The threat-intel sync with two workers that share nothing but Temporal and PostgreSQL.

Each worker has its own HANDRAIL_HOME; the ledger, the intel store and the sync's memory
are in one PostgreSQL database. Feeds, plans, gated batches and commits land on either
worker, and the sync still behaves as on one box: an unchanged feed changes nothing the
second time (the memory is shared), and a rollback is noticed by the next sync wherever
it runs.
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager

import httpx
import pytest
from temporalio.client import Client

from handrail.gate.ledger import open_ledger
from handrail.gate.models import RollbackTrigger, RunState
from handrail.ops.config import load_settings
from handrail.tools import ToolClients
from lab.app import create_app
from lab.testing import prepare
from tests.pg_support import fresh_database
from tests.support import Stack, with_test_keys
from tests.test_intel_sync import intel_policy, proxy_blocked, sync
from worker import build_worker
from workflows.rollback import RollbackRun, rollback_id

pytestmark = [pytest.mark.postgres, pytest.mark.workflow]


@asynccontextmanager
async def two_workers(client, tmp_path, policy: str, url: str):
    lab = load_settings({"HANDRAIL_HOME": str(tmp_path / "lab")})
    prepare(lab)
    app = create_app(lab)
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    settings = []
    for name in ("worker-a", "worker-b"):
        home = tmp_path / name
        home.mkdir()
        (home / "policy.toml").write_text(with_test_keys(policy))
        settings.append(load_settings({"HANDRAIL_HOME": str(home), "HANDRAIL_POLICY": str(home / "policy.toml"),
                                       "HANDRAIL_TASK_QUEUE": queue, "HANDRAIL_USER": "tester",
                                       "HANDRAIL_LEDGER_URL": url}))
    async with ToolClients.from_settings(settings[0], transport=httpx.ASGITransport(app=app)) as tools:
        from tests.runbooks_for_tests import ServiceLauncher

        # A second connection, as a second host would have (one client may not run two workers on a queue).
        other = await Client.connect(client.service_client.config.target_host, namespace=client.namespace,
                                     data_converter=client.data_converter)
        workers = [build_worker(c, s, tools, extra_workflows=(ServiceLauncher,))
                   for c, s in zip((client, other), settings, strict=True)]
        ledger = open_ledger(settings[0])
        async with workers[0], workers[1]:
            stack = Stack(client=client, settings=settings[0], tools=tools, ledger=ledger, home=settings[0].home)
            try:
                yield stack, settings
            finally:
                await stack.terminate_leftovers()
                ledger.close()
    app.state.store.close()


async def test_a_sync_spread_over_two_workers_keeps_one_memory(time_env, tmp_path, postgres_url):
    validated = ["45.142.212.61", "193.42.33.14", "91.92.241.17", "185.243.115.84"]
    with fresh_database(postgres_url) as url:
        async with two_workers(time_env.client, tmp_path, intel_policy(), url) as (stack, settings):
            first = await sync(stack)
            assert first.state == RunState.COMPLETED, first.error
            assert await proxy_blocked(stack, validated) == set(validated)

            again = await sync(stack)  # whichever worker plans it knows what the other applied
            assert again.state == RunState.COMPLETED
            assert all(f["cached"] for f in again.summary["feeds"].values())
            assert stack.ledger.changes_for_run(again.run_id) == []

            rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=first.run_id, requested_by="carol"),
                                   id=rollback_id(first.run_id))
            assert (await rb.result()).state == "rolled_back"
            assert not await proxy_blocked(stack, validated)
            third = await sync(stack)
            assert third.summary.get("reconciled_rollbacks") == 4
            assert await proxy_blocked(stack, validated) == set(validated)
            assert stack.ledger.verify().ok
        for s in settings:  # nothing of the sync stayed on a worker's disk
            assert not (s.home / "intel.db").exists() and not (s.home / "store").exists()
            assert not (s.home / "ledger.db").exists()
