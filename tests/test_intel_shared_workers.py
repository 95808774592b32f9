"""A sync whose activities land on different workers: one downloads and normalises, another
plans, a third checks the batch in the gate. Nothing shared but PostgreSQL (and the lab).
"""

from __future__ import annotations

import pytest

from activities.context import WorkerContext
from activities.intel import IntelActivities
from handrail.intel.messages import FeedRequest, PlanRequest
from handrail.intel.store_pg import PostgresIntelStore
from handrail.ops.config import load_settings
from lab.testing import in_process_lab
from tests.pg_support import fresh_database

pytestmark = pytest.mark.postgres


async def test_every_worker_finds_every_set_of_one_sync(postgres_url, tmp_path):
    with fresh_database(postgres_url) as url:
        async with in_process_lab(tmp_path / "lab") as lab:
            workers = [WorkerContext.build(load_settings({
                "HANDRAIL_HOME": str(tmp_path / f"worker-{i}"), "HANDRAIL_LEDGER_URL": url,
                "HANDRAIL_LAB_URL": lab.settings.lab_url}), lab.tools) for i in range(3)]
            acts = [IntelActivities(w) for w in workers]
            try:
                config = await acts[0].intel_config("run-1")
                outcomes = [await acts[i % 3].intel_feed(FeedRequest(run_id="run-1", spec=spec, config=config))
                            for i, spec in enumerate(config.feeds)]
                sets = {o.feed: o.clean_set_sha256 for o in outcomes if o.clean_set_sha256}
                assert len(sets) == len(config.feeds) >= 2
                plan = await acts[1].intel_plan(PlanRequest(run_id="run-1", now=1_000.0, sets=sets, config=config))
                work = plan.adds + plan.tighten
                assert work and sum(w.count for w in work) > 0
                for item in work:  # the worker that runs the gated batch reads what another planned
                    assert len(workers[2].intel.store.get_set(item.set_sha256)) == item.count
                again = await acts[2].intel_feed(FeedRequest(run_id="run-2", spec=config.feeds[0], config=config))
                assert again.cached  # parsed once, by whichever worker came first
                for w in workers:
                    assert isinstance(w.intel.store, PostgresIntelStore)
                    assert not (w.settings.home / "store").exists()
                    assert not (w.settings.home / "intel.db").exists()
            finally:
                for w in workers:
                    w.intel.state.close()
                workers[0].intel.store.close()
