"""The intel sync's memory behaves the same in SQLite and PostgreSQL, and on PostgreSQL every
worker shares it: what one worker committed, another plans from, with no lost update.
"""

from __future__ import annotations

import threading

import pytest

from handrail.intel.backends import open_state
from handrail.intel.sets import IndicatorSet
from handrail.intel.state import IntelState, entries_text
from handrail.intel.state_pg import PostgresIntelState
from handrail.intel.store import IntelStore
from handrail.intel.store_pg import PostgresIntelStore
from handrail.ops.config import load_settings
from handrail.runbooks.phishing.intel_named import named_by_intel
from tests.pg_support import fresh_database

pytestmark = pytest.mark.postgres


def _build(entries) -> IndicatorSet:
    import ipaddress

    ips = [int(ipaddress.ip_address(e)) for e in entries if e[0].isdigit()]
    return IndicatorSet.build(ips, ips, domains=[e for e in entries if not e[0].isdigit()])


@pytest.fixture(params=["sqlite", "postgres"])
def state(request, tmp_path):
    if request.param == "sqlite":
        store = IntelStore(tmp_path / "store")
        st = IntelState(tmp_path / "intel.db", store)
        yield st
        st.close()
        return
    with fresh_database(request.getfixturevalue("postgres_url")) as url:
        store = PostgresIntelStore(url)
        st = PostgresIntelState(url, store)
        try:
            yield st
        finally:
            st.close()
            store.close()


def test_commits_age_and_rollbacks(state):
    store = state.store
    applied = _build(["1.2.3.4", "9.9.9.9", "evil.com"])
    assert state.commit("c1", "proxy.block", store.put_set(applied), +1) is True
    assert state.commit("c1", "proxy.block", store.put_set(applied), +1) is False  # idempotent
    feed = _build(["1.2.3.4", "evil.com"])
    due, counts = state.age([feed], now=1000.0, grace_s=100)
    assert counts == {"tracked": 3, "absent": 1, "newly_absent": 1, "due": 0}
    due, _ = state.age([feed], now=1101.0, grace_s=100)
    assert entries_text(due) == ["9.9.9.9"]
    state.commit("c2", "proxy.block", store.put_set(_build(["9.9.9.9"])), -1)
    assert entries_text(state.applied("proxy.block")) == ["1.2.3.4", "evil.com"]
    assert state.reconcile(lambda cid: cid == "c2") == 1
    assert state.reconcile(lambda cid: cid == "c2") == 0
    assert entries_text(state.applied("proxy.block")) == ["1.2.3.4", "9.9.9.9", "evil.com"]
    state.commit("c3", "ips.deploy_rule", store.put_set(_build(["5.5.5.5"])), +1,
                 store.put_set(_build(["5.5.5.5"])))
    assert entries_text(state.others("ips.deploy_rule")) == ["5.5.5.5"]
    state.prune_others([feed])
    assert len(state.others("ips.deploy_rule")) == 0
    assert [t for t, _ in state.applied_shas()] == ["ips.deploy_rule", "ips.deploy_rule#others",
                                                    "proxy.block"]


def test_last_good_feeds_and_stable_sids(state):
    assert state.last_feed("a") is None
    state.remember_feed("a", "1" * 64)
    state.remember_feed("a", "2" * 64)
    assert state.last_feed("a") == "2" * 64
    first = state.sids(["1.2.3.4", "evil.com"], 1_000)
    again = state.sids(["evil.com", "5.5.5.5", "1.2.3.4"], 1_000)
    assert first == [1_001, 1_002] and again[0] == first[1] and again[2] == first[0]
    assert again[1] > 1_002 and state.sids(["evil.com", "5.5.5.5"], 1_000) == again[:2]  # stable
    assert state.sids(["never.seen"], 1_000, allocate=False) == [None]


def test_two_workers_share_one_memory_without_lost_updates(postgres_url, tmp_path):
    with fresh_database(postgres_url) as url:
        homes = [load_settings({"HANDRAIL_HOME": str(tmp_path / h), "HANDRAIL_LEDGER_URL": url}) for h in "ab"]
        assert isinstance(open_state(homes[0], PostgresIntelStore.shared(url)), PostgresIntelState)
        stores = [PostgresIntelStore(url) for _ in homes]  # one per worker process, each with its own pool
        states = [PostgresIntelState(url, s) for s in stores]
        errors: list[Exception] = []

        def commit(i: int) -> None:
            st = states[i % 2]
            try:
                st.commit(f"c{i}", "proxy.block", st.store.put_set(_build([f"10.0.0.{i}"])), +1)
                st.sids([f"10.0.0.{i}", "shared.example"], 0)
            except Exception as exc:  # pragma: no cover - the failure we look for
                errors.append(exc)

        threads = [threading.Thread(target=commit, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            assert not errors
            assert len(states[1].applied("proxy.block")) == 12  # every worker's commit, none lost
            sids = states[0].sids([f"10.0.0.{i}" for i in range(12)] + ["shared.example"], 0, allocate=False)
            assert sorted(sids) == list(range(1, 14))  # unique and dense across both workers
            named = named_by_intel(states[0], stores[1])
            assert {"10.0.0.0", "10.0.0.11"} <= named
            assert not (tmp_path / "a" / "intel.db").exists()
        finally:
            for s in (*states, *stores):
                s.close()


def test_a_sqlite_state_moves_to_postgresql_with_its_sids(postgres_url, tmp_path):
    old = IntelState(tmp_path / "intel.db", IntelStore(tmp_path / "store"))
    old.commit("c1", "proxy.block", old.store.put_set(_build(["1.2.3.4", "evil.com"])), +1)
    old.remember_feed("a", "3" * 64)
    sids = old.sids(["1.2.3.4", "evil.com"], 7)
    with fresh_database(postgres_url) as url:
        store = PostgresIntelStore(url)
        new = PostgresIntelState(url, store)
        try:
            for kind in ("iset",):
                for sha in old.store.blob_keys(kind):
                    store._put_blob(kind, sha, old.store._get_blob(kind, sha))
            assert new.import_rows(old) == {"applied": 1, "commits": 1, "age": 0, "feeds": 1, "sids": 2}
            assert new.import_rows(old) == {"applied": 0, "commits": 0, "age": 0, "feeds": 0, "sids": 0}
            assert entries_text(new.applied("proxy.block")) == ["1.2.3.4", "evil.com"]
            assert new.sids(["evil.com", "1.2.3.4", "new.example"], 7) == [sids[1], sids[0], 10]
            assert new.last_feed("a") == "3" * 64
        finally:
            new.close()
            store.close()
    old.close()


def test_what_a_person_rolled_back_is_remembered_until_no_feed_names_it(state):
    """A person's rollback (not compensation or expiry) of an add is remembered per tool, so the
    sync does not redo it; it is forgotten once no feed names the entry, or on request."""
    store = state.store
    state.commit("c1", "proxy.block", store.put_set(_build(["1.2.3.4", "evil.com"])), +1)
    state.commit("c2", "proxy.block", store.put_set(_build(["5.6.7.8"])), +1)
    assert state.reconcile(lambda cid: True, by_person=lambda cid: cid == "c1") == 2
    assert len(state.applied("proxy.block")) == 0
    assert entries_text(state.rolled_back("proxy.block")) == ["1.2.3.4", "evil.com"]  # c2 was compensated
    state.prune_others([_build(["1.2.3.4"])])
    assert entries_text(state.rolled_back("proxy.block")) == ["1.2.3.4"]
    assert state.forget_rolled_back() == 1 and len(state.rolled_back("proxy.block")) == 0
