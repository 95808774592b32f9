"""The embedded PostgreSQL server the PostgreSQL tests, the bench and a local multi-worker stack use."""

from __future__ import annotations

import psycopg
import pytest

from handrail.ops.postgres import EmbeddedPostgres

pytestmark = pytest.mark.postgres


def test_session_server_answers_queries(postgres_url):
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_database(), 1 + 1").fetchone() == ("handrail", 2)


def test_a_server_starts_and_stops_and_keeps_nothing_behind():
    server = EmbeddedPostgres()
    url = server.start()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (7)")
        conn.commit()
        assert conn.execute("SELECT x FROM t").fetchone() == (7,)
    data = server.data_dir
    server.stop()
    assert not data.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_the_server_binaries_are_reachable_by_the_user_that_runs_them():
    """Under root the server runs as `nobody`, who cannot enter a venv below a 0700 folder
    (a clone in `mktemp -d`): then a root-owned copy is used, reachable by everyone."""
    import os

    from handrail.ops import postgres

    if os.geteuid() != 0:
        pytest.skip("only root hands the server to another user")  # non-root runs its own venv's binaries
    found = postgres._binaries_for_nobody()
    assert postgres._reachable_by_others(found / "postgres")
    if found != postgres.binaries():
        assert postgres._trusted(found.parents[2])
