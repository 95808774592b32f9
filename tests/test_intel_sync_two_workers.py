"""The threat-intel sync on two workers that share nothing but Temporal and PostgreSQL.

Each worker has its own HANDRAIL_HOME; the ledger, the intel store and the sync's memory
are in one PostgreSQL database. Worker A runs a sync, worker B (another home, another
connection) the next one and a rollback, A the third: the sync behaves as on one box. An
unchanged feed changes nothing the second time, wherever it runs (the memory is shared), and
a rollback done on one worker is noticed (and kept) by the next sync on the other. (Activities of one
sync spread over workers: `tests/test_intel_shared_workers.py`.) No activity touches the
intel store or state on a worker's event loop.
"""

from __future__ import annotations

import asyncio
import traceback
import uuid

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client

from handrail.gate.ledger import open_ledger
from handrail.gate.models import RollbackTrigger, RunState
from handrail.intel.state_pg import PostgresIntelState
from handrail.intel.store_pg import PostgresIntelStore
from handrail.ops.config import load_settings
from handrail.tools import ToolClients
from lab.app import create_app
from lab.testing import prepare
from tests.pg_support import fresh_database
from tests.runbooks_for_tests import ServiceLauncher
from tests.support import Stack, with_test_keys
from tests.test_intel_sync import intel_policy, proxy_blocked, sync
from worker import build_worker
from workflows.rollback import RollbackRun, rollback_id

pytestmark = [pytest.mark.postgres, pytest.mark.workflow]

VALIDATED = ["45.142.212.61", "193.42.33.14", "91.92.241.17", "185.243.115.84"]


def _watch_the_loop(monkeypatch) -> list[str]:
    """Note every intel store or state call an activity makes on the event loop's thread (each
    one a PostgreSQL round trip that would stall every activity and poll of the worker)."""
    on_loop: list[str] = []

    def watched(cls, name):
        original = getattr(cls, name)

        def call(self, *args, **kwargs):
            try:
                asyncio.get_running_loop()
                if activity.in_activity():
                    on_loop.append(f"{cls.__name__}.{name}: " + "".join(traceback.format_stack(limit=5)))
            except RuntimeError:
                pass  # a thread of the worker's pool: fine
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, call)

    for name in ("_put_blob", "_get_blob", "_has_blob", "_replace_blob", "blob_keys"):
        watched(PostgresIntelStore, name)
    for name in ("_tx", "_q"):
        watched(PostgresIntelState, name)
    return on_loop


def _worker_settings(tmp_path, name: str, queue: str, url: str):
    home = tmp_path / name
    home.mkdir()
    (home / "policy.toml").write_text(with_test_keys(intel_policy()))
    return load_settings({"HANDRAIL_HOME": str(home), "HANDRAIL_POLICY": str(home / "policy.toml"),
                          "HANDRAIL_TASK_QUEUE": queue, "HANDRAIL_USER": "tester", "HANDRAIL_LEDGER_URL": url})


async def test_syncs_on_two_workers_keep_one_memory(time_env, tmp_path, postgres_url, monkeypatch):
    on_loop = _watch_the_loop(monkeypatch)
    lab = load_settings({"HANDRAIL_HOME": str(tmp_path / "lab")})
    prepare(lab)
    app = create_app(lab)
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    client = time_env.client
    other = await Client.connect(client.service_client.config.target_host, namespace=client.namespace,
                                 data_converter=client.data_converter)  # as a second host would have
    with fresh_database(postgres_url) as url:
        a, b = (_worker_settings(tmp_path, name, queue, url) for name in ("worker-a", "worker-b"))
        async with ToolClients.from_settings(a, transport=httpx.ASGITransport(app=app)) as tools:
            ledger = open_ledger(a)
            stack = Stack(client=client, settings=a, tools=tools, ledger=ledger, home=a.home)

            def worker(settings, connection):
                return build_worker(connection, settings, tools, extra_workflows=(ServiceLauncher,))

            try:
                async with worker(a, client):
                    first = await sync(stack)
                    assert first.state == RunState.COMPLETED, first.error
                    assert await proxy_blocked(stack, VALIDATED) == set(VALIDATED)
                async with worker(b, other):
                    again = await sync(stack)  # B knows what A applied: nothing to send again
                    assert again.state == RunState.COMPLETED
                    assert all(f["cached"] for f in again.summary["feeds"].values())
                    assert ledger.changes_for_run(again.run_id) == []
                    rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=first.run_id, requested_by="carol"),
                                           id=rollback_id(first.run_id))
                    assert (await rb.result()).state == "rolled_back"
                    assert not await proxy_blocked(stack, VALIDATED)
                async with worker(a, client):
                    third = await sync(stack)  # A notices B's rollback and leaves what carol took back alone
                    assert third.summary.get("reconciled_rollbacks") == 4
                    assert third.summary["not_readded_after_rollback"]["proxy.block"] >= len(VALIDATED)
                    assert not await proxy_blocked(stack, VALIDATED)
                assert ledger.verify().ok
                assert on_loop == [], on_loop[0]
            finally:
                await stack.terminate_leftovers()
                ledger.close()
        for s in (a, b):  # nothing of the sync stayed on a worker's disk
            assert not (s.home / "intel.db").exists() and not (s.home / "store").exists()
            assert not (s.home / "ledger.db").exists()
    app.state.store.close()
