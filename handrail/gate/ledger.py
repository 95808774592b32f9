"""The ledger: every change with the state it replaced, and a tamper-evident audit trail.

Temporal's history is kept for days; the ledger is kept for good. It lives in SQLite
under HANDRAIL_HOME (one box, the embedded default) or in PostgreSQL when
HANDRAIL_LEDGER_URL is `postgresql://…` (several workers on several hosts):
`open_ledger(settings)` picks the backend. The audit table is append-only and
hash-chained: each row stores the SHA-256 of the previous row together with its own
canonical JSON, so editing or deleting any row breaks every hash after it and
`handrail audit verify` names the first row that no longer fits.

Writes are idempotent (audit rows by event id, changes by change id, reverts by change
id) because activities that write here may be retried by Temporal.

The `changes` and `reverts` tables are indexes for speed, not the record: each finished
change and each revert is written together with an audit event that carries the same
content, in one transaction, so it is part of the hash chain. `verified_change` reads a
change back only if its row agrees with that chained event (and the event still fits its
neighbours), so an inverse edited in the file is refused instead of executed.

The rules live in `handrail.gate.ledger_core` (shared by both backends); this module is
the SQLite backend: its SQL, its connection, and the factory.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handrail.gate.ledger_core import (  # noqa: F401 - the ledger's public names live here too
    GENESIS,
    LedgerCore,
    LimitCheck,
    RevertRow,
    UntrustedRecord,
    VerifyResult,
    canonical,
    chain_hash,
    chained_rows,
    chained_twin,
    iso,
)
from handrail.gate.models import AuditEvent

if TYPE_CHECKING:
    from handrail.ops.config import Settings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    at TEXT NOT NULL,
    run_id TEXT NOT NULL,
    step_id TEXT,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_run ON audit(run_id, seq);
CREATE INDEX IF NOT EXISTS audit_event ON audit(event, at);
CREATE TABLE IF NOT EXISTS changes (
    change_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    mode TEXT NOT NULL,
    automated INTEGER NOT NULL,
    applied_at TEXT NOT NULL,
    expires_at TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_run ON changes(run_id, applied_at);
CREATE INDEX IF NOT EXISTS changes_kind_time ON changes(kind, applied_at);
CREATE TABLE IF NOT EXISTS reverts (
    change_id TEXT PRIMARY KEY REFERENCES changes(change_id),
    run_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    verified INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reverts_time ON reverts(at);
-- blast-radius reservations: a change admitted by rate_limit/per_run_limit, not yet begun
CREATE TABLE IF NOT EXISTS reservations (
    change_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_kind ON reservations(kind, expires_at);
-- baseline, trust and review (handrail.trust.baseline): covering indexes so that figures over a
-- million rows are index-only scans with SQL aggregation.
CREATE INDEX IF NOT EXISTS changes_kind_hour ON changes(kind, substr(applied_at, 1, 13), mode, applied_at);
CREATE INDEX IF NOT EXISTS changes_kind_run ON changes(kind, run_id, applied_at);
CREATE INDEX IF NOT EXISTS changes_target ON changes(target, applied_at);
CREATE INDEX IF NOT EXISTS changes_automated_target ON changes(automated, applied_at, target, kind, run_id);
"""


class SqliteSQL:
    """Every statement the SQLite ledger runs, by name (the PostgreSQL twin: ledger_postgres.PostgresSQL)."""

    INSERT_AUDIT = ("INSERT INTO audit(seq, event_id, at, run_id, step_id, event, body, prev_hash, hash)"
                    " VALUES (?,?,?,?,?,?,?,?,?)")
    INSERT_CHANGE = ("INSERT OR IGNORE INTO changes(change_id, run_id, step_id, kind, target, mode, automated,"
                     " applied_at, expires_at, body) VALUES (?,?,?,?,?,?,?,?,?,?)")
    INSERT_REVERT = ("INSERT OR IGNORE INTO reverts(change_id, run_id, reason, by, at, verified, detail)"
                     " VALUES (?,?,?,?,?,?,?)")
    HEAD_ROW = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
    RECORDED_IDS = "SELECT event_id FROM audit WHERE event_id IN (SELECT value FROM json_each(?))"
    AUDIT_ROWS = "SELECT seq, body, prev_hash, hash FROM audit ORDER BY seq"
    AUDIT_ROWS_OF_RUN = "SELECT seq, body, prev_hash, hash FROM audit WHERE run_id = ? ORDER BY seq"
    AUDIT_CHUNK = ("SELECT seq, event_id, at, run_id, step_id, event, body, prev_hash, hash FROM audit"
                   " WHERE seq > ? ORDER BY seq LIMIT ?")
    UPDATE_CHANGE_BODY = "UPDATE changes SET body = ? WHERE change_id = ?"
    CHANGE_WITH_REVERT = ("SELECT c.body, r.at, r.by FROM changes c LEFT JOIN reverts r USING(change_id)"
                          " WHERE c.change_id = ?")
    CHANGES_OF_RUN = ("SELECT c.body, r.at, r.by FROM changes c LEFT JOIN reverts r USING(change_id)"
                      " WHERE c.run_id = ? ORDER BY c.applied_at, c.rowid")
    REVERT_OF = "SELECT change_id, run_id, reason, by, at, verified, detail FROM reverts WHERE change_id = ?"
    AUDIT_BY_EVENT_ID = "SELECT seq, body, prev_hash, hash FROM audit WHERE event_id = ?"
    HASH_BEFORE = "SELECT hash FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT 1"
    PREV_HASH_AFTER = "SELECT prev_hash FROM audit WHERE seq > ? ORDER BY seq LIMIT 1"
    CHANGE_BODY = "SELECT body FROM changes WHERE change_id = ?"
    CHANGE_IDS_OF_RUN = "SELECT change_id FROM changes WHERE run_id = ? ORDER BY applied_at, rowid"
    ALL_CHANGE_IDS = "SELECT change_id FROM changes ORDER BY applied_at, rowid"
    COUNT_KIND_SINCE = "SELECT COUNT(*) FROM changes WHERE kind = ? AND applied_at >= ?"
    COUNT_KIND_SINCE_IN_RUN = "SELECT COUNT(*) FROM changes WHERE kind = ? AND applied_at >= ? AND run_id = ?"
    COUNT_KIND_IN_RUN = "SELECT COUNT(*) FROM changes WHERE kind = ? AND run_id = ?"
    DELETE_EXPIRED_RESERVATIONS = "DELETE FROM reservations WHERE expires_at <= ?"
    DELETE_RESERVATION = "DELETE FROM reservations WHERE change_id = ?"
    COUNT_RESERVATIONS = ("SELECT COUNT(*), SUM(run_id = ?) FROM reservations WHERE kind = ? AND change_id != ?")
    UPSERT_RESERVATION = ("INSERT OR REPLACE INTO reservations(change_id, run_id, kind, at, expires_at)"
                          " VALUES (?,?,?,?,?)")
    HEAD = "SELECT COUNT(*), (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1) FROM audit"
    HASH_CHUNK = "SELECT seq, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?"
    RUN_IDS = "SELECT DISTINCT run_id FROM audit ORDER BY run_id"

    @staticmethod
    def kinds_filter(column: str, kinds: list[str] | None) -> tuple[str, list[Any]]:
        if kinds is None:
            return "", []
        kinds = list(kinds)
        return f" AND {column} IN ({','.join('?' * len(kinds))})", kinds


class _SqliteTx:
    """The `Tx` interface over the one sqlite3 connection (the caller holds the ledger's lock)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def one(self, sql: str, args: Any = ()) -> tuple | None:
        return self.db.execute(sql, args).fetchone()

    def all(self, sql: str, args: Any = ()) -> list[tuple]:
        return self.db.execute(sql, args).fetchall()

    def run(self, sql: str, args: Any = ()) -> int:
        return self.db.execute(sql, args).rowcount

    def many(self, sql: str, rows: list[tuple]) -> int:
        before = self.db.total_changes
        self.db.executemany(sql, rows)
        return self.db.total_changes - before


def _chained(prev: str, events: list[AuditEvent]) -> Iterator[tuple]:
    """Audit rows without their seq (event_id, at, run_id, step_id, event, body, prev_hash, hash):
    for tools and tests that write rows themselves."""
    for row in chained_rows(0, prev, events):
        yield row[1:]


class Ledger(LedgerCore):
    """The SQLite ledger: one file, one connection per process, WAL."""

    SQL = SqliteSQL
    backend = "sqlite"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._tx = _SqliteTx(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _ids(self, values: list[str]) -> str:
        return json.dumps(values)

    @contextmanager
    def _read(self) -> Iterator[_SqliteTx]:
        with self._lock:
            yield self._tx

    @contextmanager
    def _write(self) -> Iterator[_SqliteTx]:
        """One writer at a time, across threads (the lock) and processes (BEGIN IMMEDIATE)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._tx
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def read(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        """Run one read-only query and return its rows (the baseline's SQL aggregation)."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()


def open_ledger(settings: "Settings") -> LedgerCore:
    """The ledger HANDRAIL_LEDGER_URL names: PostgreSQL for `postgresql://…`, else the SQLite file."""
    if settings.ledger_on_postgres:
        from handrail.gate.ledger_postgres import PostgresLedger

        return PostgresLedger(settings.ledger_url)
    return Ledger(settings.ledger_path)
