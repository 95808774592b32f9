"""The PostgreSQL ledger outlives a restart of its database without a worker restart.

A database is restarted for upgrades, failovers and configuration changes; every session
is cut. A worker's ledger pool then holds dead connections: the call that meets one fails
as a connection error (the activity is retried by Temporal, and every ledger write is
idempotent), the pool drops it, and the calls after it work on fresh connections. Nothing
committed before the restart is lost and the chain still verifies.
"""

from __future__ import annotations

from datetime import datetime, timezone

import psycopg
import pytest

from handrail.gate.ledger_postgres import PostgresLedger
from handrail.gate.models import AuditEvent
from handrail.ops.postgres import EmbeddedPostgres

pytestmark = pytest.mark.postgres


def _event(i: int) -> AuditEvent:
    return AuditEvent(id=f"run-1:{i}", at=datetime(2026, 11, 1, tzinfo=timezone.utc), run_id="run-1",
                      event="step.requested", data={"i": i})


def test_the_ledger_carries_on_after_its_database_restarts():
    server = EmbeddedPostgres()
    url = server.start()
    try:
        ledger = PostgresLedger(url, pool_size=2)
        try:
            assert ledger.append([_event(0), _event(1)]) == 2
            server.restart()
            failed = 0
            for i in range(2, 6):
                try:
                    ledger.append([_event(i)])
                except psycopg.OperationalError:
                    failed += 1  # a connection cut by the restart; the activity's retry writes it
                    assert ledger.append([_event(i)]) == 1
            assert failed <= 2  # at most one per pooled connection, then only fresh ones
            rows = list(ledger.audit_rows())
            assert [r["id"] for r in rows] == [f"run-1:{i}" for i in range(6)]
            assert ledger.verify().ok
        finally:
            ledger.close()
    finally:
        server.stop()
