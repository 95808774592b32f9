"""`handrail ledger migrate --to postgresql://…` on a real PostgreSQL server.

The source is a SQLite ledger with three weeks of gate-shaped history (changes, approvals,
denials, reverts: `handrail.trust.synth`), an intel store and the intel sync's memory, all
under one HANDRAIL_HOME, as a one-box installation has them.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from handrail.gate.checkpoints import append_checkpoint, origin_for
from handrail.gate.ledger import Ledger
from handrail.gate.ledger_postgres import PostgresLedger
from handrail.gate.models import AuditEvent, RollbackTrigger
from handrail.intel.normalize import parse_feed
from handrail.intel.state import IntelState
from handrail.intel.state_pg import PostgresIntelState
from handrail.intel.store import IntelStore
from handrail.intel.store_pg import PostgresIntelStore
from handrail.trust.synth import SyntheticLedger, build_known_ledger
from starter.cli import app
from tests.pg_support import fresh_database

pytestmark = pytest.mark.postgres


def _small_history(ledger: Ledger) -> None:
    """A dozen gate-shaped changes in three runs, one of them reverted."""
    with SyntheticLedger(ledger) as syn:
        for i in range(12):
            at = datetime(2026, 10, 1, 9, i, tzinfo=UTC)
            cid = syn.change("dns.sinkhole", at, run_id=f"run-{i % 3}", step_id=f"s{i:02d}", mode="logged")
            if i == 4:
                syn.revert(cid, "run-1", "rollback", "bob", at + timedelta(hours=1))


@pytest.fixture
def home(tmp_path, monkeypatch, request):
    monkeypatch.setenv("HANDRAIL_HOME", str(tmp_path))
    monkeypatch.delenv("HANDRAIL_LEDGER_URL", raising=False)
    ledger = Ledger(tmp_path / "ledger.db")
    (build_known_ledger if getattr(request, "param", "small") == "weeks" else _small_history)(ledger)
    ledger.close()
    store = IntelStore(tmp_path / "store")
    state = IntelState(tmp_path / "intel.db", store)
    sha = store.put_set(parse_feed(b"198.51.100.7\n203.0.113.0/24\n", feed="f", format="ipset").indicators)
    state.commit("intel-change-1", "proxy.block", sha, +1)
    state.sids(["198.51.100.7", "203.0.113.0/24"], 1_000)
    store.normalize(b"192.0.2.1\n", feed="g", format="ipset")
    state.close()
    return tmp_path


@pytest.fixture
def target(postgres_url):
    with fresh_database(postgres_url) as url:
        yield url


def migrate(*args: str):
    result = CliRunner().invoke(app, ["ledger", "migrate", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def _event(n: int) -> AuditEvent:
    return AuditEvent(id=f"late-{n}", at=datetime(2026, 11, 1, tzinfo=UTC), run_id="late", event="note",
                      data={"n": n})


@pytest.mark.parametrize("home", ["weeks"], indirect=True)
def test_a_sqlite_installation_moves_to_postgresql_verified_and_a_rerun_is_a_no_op(home, target):
    code, doc = migrate("--to", target)
    assert code == 0, doc
    source = Ledger(home / "ledger.db")
    pg = PostgresLedger(target)
    try:
        assert pg.verify().ok and pg.head() == source.head()
        assert doc["audit"]["copied"] == source.head()[0] == doc["audit"]["rows"] > 4000
        assert doc["changes"]["copied"] == 1323 and doc["reverts"]["copied"] == 43
        reverted = source.read("SELECT change_id, run_id FROM reverts")
        runs = {run for _, run in reverted} | set(source.run_ids()[::40])
        for run_id in runs:  # change records read back the same, verified against the chain
            assert pg.verified_changes_for_run(run_id) == source.verified_changes_for_run(run_id)
        assert all(pg.revert_of(cid) == source.revert_of(cid) for cid, _ in reverted)
        assert "@" not in doc["to"] and doc["to"].endswith(target.rsplit("/", 1)[1])

        code, again = migrate("--to", target)
        assert code == 0 and again["already_migrated"]
        assert (again["audit"]["copied"], again["changes"]["copied"], again["reverts"]["copied"]) == (0, 0, 0)
        assert sum(again["intel"]["blobs_copied"].values()) == 0 and pg.head() == source.head()
    finally:
        pg.close()
        source.close()
    store = PostgresIntelStore(target)
    state = PostgresIntelState(target, store)
    try:
        assert state.applied("proxy.block").as_text() == ["198.51.100.7", "203.0.113.0/24"]
        assert state.sids(["203.0.113.0/24"], 1_000, allocate=False) == [1_002]
        assert store.normalize(b"192.0.2.1\n", feed="g", format="ipset").cached
    finally:
        state.close()
        store.close()


def test_a_ledger_that_kept_growing_is_topped_up_and_its_checkpoints_still_match(home, target, monkeypatch):
    source = Ledger(home / "ledger.db")
    append_checkpoint(home, source, origin_for(home))
    assert migrate("--to", target)[0] == 0
    source.append([_event(n) for n in range(3)])
    append_checkpoint(home, source, origin_for(home))
    code, doc = migrate("--to", target)
    pg = PostgresLedger(target)
    try:
        assert code == 0 and doc["audit"]["copied"] == 3 and pg.head() == source.head() and pg.verify().ok
        assert doc["verified"]["checkpoints"] == 2
        monkeypatch.setenv("HANDRAIL_LEDGER_URL", target)  # `handrail audit verify` on the moved ledger
        verified = CliRunner().invoke(app, ["audit", "verify", "--json"])
        assert verified.exit_code == 0 and json.loads(verified.stdout)["checkpoints"] == 2
        monkeypatch.delenv("HANDRAIL_LEDGER_URL")
        pg.append([_event(9)])  # the workers moved over and wrote on: a re-run still changes nothing
        code, doc = migrate("--to", target)
        assert code == 0 and doc["already_migrated"] and doc["audit"]["copied"] == 0
    finally:
        pg.close()
        source.close()


def test_a_target_with_another_chain_is_refused_in_one_sentence(home, target):
    other = PostgresLedger(target)
    other.append([_event(1)])
    before = other.head()
    code, doc = migrate("--to", target)
    try:
        assert code == 1
        assert doc["error"] == ("The target database already holds a different audit chain (row 1 differs); "
                                "migrate into an empty database or into the one this ledger was migrated to.")
        assert other.head() == before and other.read("SELECT COUNT(*) FROM changes") == [(0,)]
    finally:
        other.close()


def test_a_tampered_sqlite_ledger_is_not_copied(home, target):
    db = sqlite3.connect(home / "ledger.db")
    db.execute("UPDATE audit SET body = replace(body, 'dns.sinkhole', 'dns.sinkhol3') WHERE seq = 5")
    db.commit()
    db.close()
    code, doc = migrate("--to", target)
    assert code == 1 and "does not verify (row 5" in doc["error"] and doc["error"].endswith("nothing was copied.")
    pg = PostgresLedger(target)
    try:
        assert pg.head()[0] == 0
    finally:
        pg.close()


def test_a_sqlite_ledger_that_lost_its_tail_is_not_copied(home, target):
    source = Ledger(home / "ledger.db")
    source.append([_event(n) for n in range(2)])
    append_checkpoint(home, source, origin_for(home))
    source.close()
    db = sqlite3.connect(home / "ledger.db")
    db.execute("DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)")  # the chain still verifies
    db.commit()
    db.close()
    code, doc = migrate("--to", target)
    assert code == 1 and "does not match its signed checkpoints" in doc["error"] and "rows were removed" in doc["error"]


def test_an_altered_intel_blob_is_named_and_not_copied(home, target):
    sha = IntelStore(home / "store").blob_keys("iset")[0]
    (home / "store" / f"{sha}.iset").write_bytes(b"HRISET1\n...")
    code, doc = migrate("--to", target)
    assert code == 1 and doc["error"] == (f"The intel store's iset {sha} does not match its hash (the file was "
                                          "altered); remove it or restore it, then run the migration again.")
    with PostgresIntelStore(target) as store:
        assert not store.has_set(sha)


def test_usage_errors(home, tmp_path):
    code, doc = migrate("--to", "sqlite:///elsewhere.db")
    assert code == 2 and doc == {"error": "--to must be a postgresql:// URL."}
    code, doc = migrate("--to", "postgresql://handrail@127.0.0.1:9/none", "--from", str(tmp_path / "absent.db"))
    assert code == 1 and doc["error"] == f"There is no SQLite ledger at {tmp_path / 'absent.db'}."
    code, doc = migrate("--to", "postgresql://handrail:s3cret@127.0.0.1:9/none")
    assert code == 1 and "cannot be reached" in doc["error"] and "s3cret" not in doc["error"]


@pytest.mark.workflow
async def test_a_run_blocked_on_sqlite_rolls_back_after_the_move(time_env, tmp_path, target, monkeypatch):
    """Change records keep their before-states and inverses: a run made before the migration,
    by the real gate on the SQLite ledger, is rolled back afterwards by a worker on PostgreSQL."""
    from handrail.gate.models import EgressBlockTrigger
    from tests.support import make_policy, running_stack
    from workflows.egress_block import EgressBlock
    from workflows.rollback import RollbackRun, rollback_id

    ip = "203.0.113.9"
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        handle = await stack.start(EgressBlock.run, EgressBlockTrigger(ip=ip, reason="C2 beacon", requested_by="alice"))
        original = (await handle.result()).steps[0].change_id
        assert ip in await stack.edl()
        home = stack.home
    monkeypatch.setenv("HANDRAIL_HOME", str(home))
    monkeypatch.delenv("HANDRAIL_LEDGER_URL", raising=False)
    code, doc = migrate("--to", target)
    assert code == 0 and doc["changes"]["copied"] == 1, doc
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged"),
                             ledger_factory=lambda settings: PostgresLedger(target)) as stack:
        rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="bob"),
                               id=rollback_id(handle.id))
        report = await rb.result()
        assert report.state == "rolled_back" and all(r.verified for r in report.results)
        assert ip not in await stack.edl()
        assert stack.ledger.verify().ok and stack.ledger.revert_of(original).by == "bob"


def test_a_ledger_the_local_worker_still_writes_is_not_copied(home, target):
    """`handrail up`'s worker still running on the SQLite ledger: a copy now would miss what it
    records next (a change made after the copy, never in PostgreSQL). Refused in one sentence,
    nothing copied; once the worker has stopped, the migration goes ahead."""
    import subprocess

    from handrail.ops.stack import _cmdline

    worker = subprocess.Popen(["sleep", "60"])
    try:
        cmd = None
        while not cmd:
            cmd = _cmdline(worker.pid)
        record = {"home": str(home), "components": {"worker": {"pid": worker.pid, "cmd": cmd}},
                  "ledger": str(home / "ledger.db")}
        (home / "stack.json").write_text(json.dumps(record))
        code, doc = migrate("--to", target)
        assert code == 1 and doc["error"] == (
            f"The worker `handrail up` started (pid {worker.pid}) still writes to {home / 'ledger.db'}: what it "
            "records after the copy would never reach PostgreSQL. Stop it with `handrail down`, then migrate.")
        assert PostgresLedger(target).head()[0] == 0
        record["ledger"] = "postgresql"  # a worker already on PostgreSQL writes nothing here
        (home / "stack.json").write_text(json.dumps(record))
        assert migrate("--to", target)[0] == 0
    finally:
        worker.kill()
        worker.wait()
