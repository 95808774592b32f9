"""Both ledger backends for one test: a fresh SQLite file or a fresh PostgreSQL database.

`ledger` fixtures built from here give each test its own database on the session's
PostgreSQL server (`postgres_url`), so tests never see each other's rows; `raw` runs SQL
behind the ledger's back, as someone with write access to its storage would (tampering).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from handrail.gate.ledger import Ledger
from handrail.gate.ledger_core import LedgerCore
from tests.pg_support import new_database

BACKENDS = [pytest.param("sqlite", marks=pytest.mark.unit), pytest.param("postgres", marks=pytest.mark.postgres)]


def open_backend(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> LedgerCore:
    if backend == "sqlite":
        return Ledger(tmp_path / "ledger.db")
    from handrail.gate.ledger_postgres import PostgresLedger

    return PostgresLedger(new_database(request.getfixturevalue("postgres_url")))


def location(ledger: LedgerCore) -> str:
    """Where another process finds the same ledger: the SQLite path or the PostgreSQL URL."""
    return str(ledger.path) if ledger.backend == "sqlite" else ledger.url


def raw(ledger: LedgerCore, sql: str) -> None:
    """Run `sql` directly against the ledger's storage, outside the ledger (a tamperer's edit)."""
    if ledger.backend == "sqlite":
        db = sqlite3.connect(ledger.path)
        db.execute(sql)
        db.commit()
        db.close()
        return
    import psycopg

    with psycopg.connect(ledger.url, autocommit=True) as conn:
        conn.execute(sql)
