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
from typing import Any, Protocol

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


class LedgerSettings(Protocol):
    """What choosing a ledger needs from the settings (handrail.ops.config.Settings has it)."""

    @property
    def ledger_url(self) -> str: ...
    @property
    def ledger_on_postgres(self) -> bool: ...
    @property
    def ledger_path(self) -> Path: ...

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
    RECORDED_IDS_AND_HEAD = ("SELECT event_id, NULL, NULL FROM audit WHERE event_id IN (SELECT value FROM json_each(?))"
                             " UNION ALL SELECT * FROM (SELECT NULL, seq, hash FROM audit ORDER BY seq DESC LIMIT 1)")
    AUDIT_ROWS = "SELECT seq, body, prev_hash, hash FROM audit ORDER BY seq"
    AUDIT_ROWS_OF_RUN = "SELECT seq, body, prev_hash, hash FROM audit WHERE run_id = ? ORDER BY seq"
    AUDIT_CHUNK = ("SELECT seq, event_id, at, run_id, step_id, event, body, prev_hash, hash FROM audit"
                   " WHERE seq > ? ORDER BY seq LIMIT ?")
    UPDATE_CHANGE_BODY = "UPDATE changes SET body = ? WHERE change_id = ?"
    CHANGE_WITH_REVERT = ("SELECT c.body, r.at, r.by FROM changes c LEFT JOIN reverts r USING(change_id)"
                          " WHERE c.change_id = ?")
    CHANGES_OF_RUN = ("SELECT c.body, r.at, r.by FROM changes c LEFT JOIN reverts r USING(change_id)"
                      " WHERE c.run_id = ? ORDER BY c.applied_at, c.rowid")
    CHANGES_OF_TARGET = ("SELECT c.body, r.at, r.by FROM changes c INDEXED BY changes_target"
                         " LEFT JOIN reverts r USING(change_id) WHERE c.target = ? AND c.kind = ?"
                         " ORDER BY c.applied_at, c.rowid")
    REVERT_OF = "SELECT change_id, run_id, reason, by, at, verified, detail FROM reverts WHERE change_id = ?"
    CHAINED_EVENT = (  # an event with its neighbours' links: one statement, one snapshot
        "SELECT a.seq, a.body, a.prev_hash, a.hash,"
        " (SELECT b.hash FROM audit b WHERE b.seq < a.seq ORDER BY b.seq DESC LIMIT 1),"
        " (SELECT c.prev_hash FROM audit c WHERE c.seq > a.seq ORDER BY c.seq LIMIT 1)"
        " FROM audit a WHERE a.event_id = ?")
    CHANGE_BODY = "SELECT body FROM changes WHERE change_id = ?"
    CHANGE_IDS_OF_RUN = "SELECT change_id FROM changes WHERE run_id = ? ORDER BY applied_at, rowid"
    ALL_CHANGE_IDS = "SELECT change_id FROM changes ORDER BY applied_at, rowid"
    CHANGE_BODIES_OF = "SELECT change_id, body FROM changes WHERE change_id IN (SELECT value FROM json_each(?))"
    REVERTS_OF = ("SELECT change_id, run_id, reason, by, at, verified, detail FROM reverts"
                  " WHERE change_id IN (SELECT value FROM json_each(?))")
    AUDIT_BODIES_OF = "SELECT event_id, seq, body FROM audit WHERE event_id IN (SELECT value FROM json_each(?))"
    COUNT_KIND_SINCE = "SELECT COUNT(*) FROM changes WHERE kind = ? AND applied_at >= ?"
    COUNT_KIND_SINCE_IN_RUN = "SELECT COUNT(*) FROM changes WHERE kind = ? AND applied_at >= ? AND run_id = ?"
    COUNT_KIND_IN_RUN = "SELECT COUNT(*) FROM changes WHERE kind = ? AND run_id = ?"
    DELETE_EXPIRED_RESERVATIONS = "DELETE FROM reservations WHERE expires_at <= ?"
    DELETE_RESERVATION = "DELETE FROM reservations WHERE change_id = ?"
    LIMIT_COUNTS = (  # changes in the hour, in the run; others' reservations likewise; the change already begun?
        "SELECT (SELECT COUNT(*) FROM changes WHERE kind = :kind AND applied_at >= :since),"
        " (SELECT COUNT(*) FROM changes WHERE kind = :kind AND run_id = :run_id),"
        " (SELECT COUNT(*) FROM reservations WHERE kind = :kind AND change_id != :change_id),"
        " (SELECT COUNT(*) FROM reservations WHERE kind = :kind AND run_id = :run_id AND change_id != :change_id),"
        " EXISTS (SELECT 1 FROM changes WHERE change_id = :change_id)")
    UPSERT_RESERVATION = ("INSERT OR REPLACE INTO reservations(change_id, run_id, kind, at, expires_at)"
                          " VALUES (?,?,?,?,?)")
    HEAD = "SELECT COUNT(*), (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1) FROM audit"
    HASH_CHUNK = "SELECT seq, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?"
    RUN_IDS = "SELECT DISTINCT run_id FROM audit ORDER BY run_id"

    # -- reports: baseline, trust advice, review, reconciler, exfiltration history ----------
    # `{where}` takes `kinds_filter`; CROSS JOIN and INDEXED BY pin plans SQLite would get wrong.
    BASELINE_CHANGE_BUCKETS = (
        "SELECT kind, substr(applied_at, 1, 13) AS h, mode, COUNT(*) FROM changes INDEXED BY changes_kind_hour"
        " WHERE applied_at >= ? AND applied_at < ?{where} GROUP BY kind, substr(applied_at, 1, 13), mode")
    BASELINE_FIRST_LAST = (
        "SELECT (SELECT MIN(applied_at) FROM changes WHERE kind = ?1 AND applied_at >= ?2 AND applied_at < ?3),"
        " (SELECT MAX(applied_at) FROM changes WHERE kind = ?1 AND applied_at >= ?2 AND applied_at < ?3)")
    BASELINE_BATCHES = (
        "SELECT kind, n, COUNT(*) FROM (SELECT kind, COUNT(*) AS n FROM changes INDEXED BY changes_kind_run"
        " WHERE applied_at >= ? AND applied_at < ?{where} GROUP BY kind, run_id) GROUP BY kind, n")
    BASELINE_APPROVALS = (
        "WITH s AS (SELECT"
        " MAX(CASE WHEN event = 'approval.requested' THEN json_extract(body, '$.data.kind') END) AS kind,"
        " MIN(CASE WHEN event = 'approval.requested' THEN at END) AS req,"
        " MIN(CASE WHEN event = 'approval.decided' THEN at END) AS dec,"
        " MAX(CASE WHEN event = 'approval.decided' THEN json_extract(body, '$.data.approved') END) AS ok,"
        " MAX(event = 'approval.timeout') AS timed_out, MAX(event = 'approval.escalated') AS escalated"
        " FROM audit WHERE event IN ('approval.requested', 'approval.decided', 'approval.timeout',"
        " 'approval.escalated') AND at >= ? AND at < ? GROUP BY run_id, step_id)"
        " SELECT kind, CAST(ROUND((julianday(dec) - julianday(req)) * 86400) AS INTEGER) AS secs,"
        " COUNT(*), SUM(ok = 1), SUM(ok = 0), SUM(timed_out), SUM(escalated)"
        " FROM s WHERE req IS NOT NULL{where} GROUP BY kind, secs")
    BASELINE_GUARDRAIL_OUTCOMES = (  # (JSON [kind, outcome], n): one JSON parse per evaluation
        "SELECT json_extract(body, '$.data.kind', '$.data.outcome') AS ko, COUNT(*) FROM audit"
        " WHERE event = 'guardrails.evaluated' AND at >= ? AND at < ? GROUP BY ko")
    BASELINE_GUARDRAIL_VERDICTS = (
        "SELECT kind, json_extract(v.value, '$.guardrail'), json_extract(v.value, '$.outcome'), COUNT(*)"
        " FROM (SELECT json_extract(body, '$.data.kind') AS kind, body FROM audit"
        " WHERE event = 'guardrails.evaluated' AND at >= ? AND at < ?"
        " AND (instr(body, '\"outcome\":\"hold\"') OR instr(body, '\"outcome\":\"deny\"'))) AS g,"
        " json_each(g.body, '$.data.verdicts') AS v WHERE 1{where} GROUP BY 1, 2, 3")
    BASELINE_REVERTS = (
        "SELECT c.kind, c.mode, r.reason, COUNT(*) FROM reverts r CROSS JOIN changes c ON c.change_id = r.change_id"
        " WHERE c.applied_at >= ? AND c.applied_at < ?{where} GROUP BY c.kind, c.mode, r.reason")
    BASELINE_OVERRIDES = (
        "SELECT kind, mode, COUNT(*) FROM ("
        " SELECT c.change_id, c.kind, c.mode FROM reverts r CROSS JOIN changes c ON c.change_id = r.change_id"
        "  WHERE r.reason = 'rollback' AND c.automated = 1 AND c.applied_at >= ? AND c.applied_at < ?{where}"
        " UNION"
        " SELECT c.change_id, c.kind, c.mode FROM changes d INDEXED BY changes_automated_target"
        "  JOIN changes c INDEXED BY changes_target ON c.target = d.target AND c.applied_at < d.applied_at"
        "  WHERE d.automated = 0 AND d.applied_at >= ? AND d.applied_at < ?"
        "  AND c.automated = 1 AND c.applied_at >= ? AND c.run_id != d.run_id{where}"
        "  AND json_extract(c.body, '$.inverse.kind') = d.kind"
        "  AND NOT EXISTS (SELECT 1 FROM reverts r2 WHERE r2.change_id = c.change_id AND r2.at <= d.applied_at)"
        ") GROUP BY kind, mode")
    TRUST_MODE_CHANGES = "SELECT at, body FROM audit WHERE event = 'trust.mode_changed' ORDER BY seq"
    TRUST_KNOWN_KINDS = "SELECT DISTINCT kind FROM changes INDEXED BY changes_kind_time"
    TRUST_KIND_SEEN = "SELECT 1 FROM changes WHERE kind = ? LIMIT 1"
    TRUST_EVIDENCE = ("SELECT COUNT(*), MIN(applied_at) FROM changes INDEXED BY changes_kind_hour"
                      " WHERE kind = ? AND applied_at >= ? AND applied_at < ? AND mode = ?")
    REVIEW_LAST = "SELECT at, body FROM audit WHERE event = 'review.marked' ORDER BY seq DESC LIMIT 1"
    REVIEW_PENDING = (
        "SELECT c.change_id, c.run_id, c.kind, c.target, c.mode, json_extract(c.body, '$.status'),"
        " json_extract(c.body, '$.requested_by'), c.applied_at, c.expires_at, r.reason, r.by, r.at,"
        " json_extract(c.body, '$.approved_by')"
        " FROM changes c INDEXED BY changes_automated_target LEFT JOIN reverts r ON r.change_id = c.change_id"
        " WHERE c.automated = 1 AND c.applied_at > ? AND c.applied_at <= ? ORDER BY c.applied_at, c.rowid")
    RECONCILE_EXPIRED = (
        "SELECT c.body FROM changes c LEFT JOIN reverts r USING(change_id)"
        " WHERE r.change_id IS NULL AND c.expires_at IS NOT NULL AND c.expires_at < ? ORDER BY c.expires_at")
    RECONCILE_LATEST = (
        "SELECT c.body, r.change_id IS NOT NULL FROM changes c LEFT JOIN reverts r USING(change_id)"
        " WHERE c.rowid IN (SELECT MAX(rowid) FROM changes GROUP BY kind, target)"
        " ORDER BY c.applied_at DESC LIMIT ?")
    EXFIL_HISTORY = ("SELECT run_id, body FROM audit WHERE event = 'exfiltration.classified' AND at >= ?"
                     " AND json_extract(body, '$.data.user') = ? ORDER BY seq")
    ROW_COUNT = "SELECT (SELECT COUNT(*) FROM changes) + (SELECT COUNT(*) FROM audit) + (SELECT COUNT(*) FROM reverts)"
    REFRESH_STATISTICS = None  # the report queries pin their plans (INDEXED BY, CROSS JOIN)

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


def open_ledger(settings: LedgerSettings) -> LedgerCore:
    """The ledger HANDRAIL_LEDGER_URL names: PostgreSQL for `postgresql://…`, else the SQLite file."""
    if settings.ledger_on_postgres:
        from handrail.gate.ledger_postgres import PostgresLedger

        return PostgresLedger(settings.ledger_url)
    return Ledger(settings.ledger_path)
