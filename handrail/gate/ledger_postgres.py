"""The ledger on PostgreSQL: one ledger, one hash chain, shared by every worker on every host.

Same rules as the SQLite ledger; this module is only the PostgreSQL side: its schema and
SQL (`PostgresSQL`, the twin of `SqliteSQL`), a psycopg 3 connection pool, and the writes.
The ledger's interface is synchronous, like the SQLite one, and the worker calls it off its
event loop (`activities.ledger_io`); the pool lets those threads run their queries in
parallel instead of queueing on one connection.

Each write (append, check_limits, begin_change, finish_change, record_revert, keep_change) is one call
of a server function (`handrail.gate.ledger_pg_functions`, the twins of `LedgerCore`'s
methods): one statement in autocommit, one round trip, one transaction. Its serialisation
point is a transaction-scoped advisory lock (`pg_advisory_xact_lock`) taken first, under
which the chain head is read and extended with consecutive `seq` numbers, so appends from
any number of processes form one linear chain (a fork would collide on the primary key, a
gap cannot be written), duplicate event ids are found and skipped, and a blast-radius count
and its reservation cannot interleave with another's. The lock is held only while the
server runs the function, never across a network round trip. Reads take no lock; bulk
imports (`insert_change_rows`, `ledger migrate`) use `LedgerCore`'s transactions.

Text columns use the "C" collation so that ISO timestamps, kinds and run ids compare and
sort byte for byte, as in SQLite, whatever the server's default locale.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from handrail.gate.ledger_core import (
    RESERVATION_TTL,
    LedgerCore,
    LedgerUnavailable,
    LimitCheck,
    chained_twin,
    change_row,
    event_columns,
    iso,
    record_body,
    to_record,
)
from handrail.gate.ledger_pg_functions import WRITE_LOCK, PgCalls, install
from handrail.gate.models import AuditEvent, ChangeRecord

POOL_SIZE = 8
CONNECT_TIMEOUT_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq BIGINT PRIMARY KEY,
    event_id TEXT COLLATE "C" NOT NULL UNIQUE,
    at TEXT COLLATE "C" NOT NULL,
    run_id TEXT COLLATE "C" NOT NULL,
    step_id TEXT COLLATE "C",
    event TEXT COLLATE "C" NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_run ON audit(run_id, seq);
CREATE INDEX IF NOT EXISTS audit_event ON audit(event, at);
CREATE TABLE IF NOT EXISTS changes (
    id BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    change_id TEXT COLLATE "C" PRIMARY KEY,
    run_id TEXT COLLATE "C" NOT NULL,
    step_id TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    target TEXT COLLATE "C" NOT NULL,
    mode TEXT COLLATE "C" NOT NULL,
    automated INTEGER NOT NULL,
    applied_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C",
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_run ON changes(run_id, applied_at);
CREATE INDEX IF NOT EXISTS changes_kind_time ON changes(kind, applied_at);
CREATE TABLE IF NOT EXISTS reverts (
    change_id TEXT COLLATE "C" PRIMARY KEY REFERENCES changes(change_id),
    run_id TEXT COLLATE "C" NOT NULL,
    reason TEXT COLLATE "C" NOT NULL,
    by TEXT COLLATE "C" NOT NULL,
    at TEXT COLLATE "C" NOT NULL,
    verified INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reverts_time ON reverts(at);
CREATE TABLE IF NOT EXISTS reservations (
    change_id TEXT COLLATE "C" PRIMARY KEY,
    run_id TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_kind ON reservations(kind, expires_at);
-- baseline, trust and review: the same covering and expression indexes as on SQLite
CREATE INDEX IF NOT EXISTS changes_kind_hour ON changes(kind, substr(applied_at, 1, 13), mode, applied_at);
CREATE INDEX IF NOT EXISTS changes_kind_run ON changes(kind, run_id, applied_at);
CREATE INDEX IF NOT EXISTS changes_target ON changes(target, applied_at);
CREATE INDEX IF NOT EXISTS changes_automated_target ON changes(automated, applied_at, target, kind, run_id);
CREATE INDEX IF NOT EXISTS changes_inverse_kind ON changes(((body::jsonb -> 'inverse') ->> 'kind'))
    WHERE automated = 1;
CREATE INDEX IF NOT EXISTS audit_exfiltration_user ON audit(((body::jsonb -> 'data') ->> 'user'), at)
    WHERE event = 'exfiltration.classified';
"""


class PostgresSQL:
    """Every statement the PostgreSQL ledger runs, by name (the SQLite twin: ledger.SqliteSQL)."""

    INSERT_AUDIT = ("INSERT INTO audit(seq, event_id, at, run_id, step_id, event, body, prev_hash, hash)"
                    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)")
    INSERT_CHANGE = ("INSERT INTO changes(change_id, run_id, step_id, kind, target, mode, automated,"
                     " applied_at, expires_at, body) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                     " ON CONFLICT (change_id) DO NOTHING")
    INSERT_REVERT = ("INSERT INTO reverts(change_id, run_id, reason, by, at, verified, detail)"
                     " VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (change_id) DO NOTHING")
    AUDIT_ROWS = "SELECT seq, body, prev_hash, hash FROM audit ORDER BY seq"
    AUDIT_ROWS_OF_RUN = "SELECT seq, body, prev_hash, hash FROM audit WHERE run_id = %s ORDER BY seq"
    AUDIT_CHUNK = ("SELECT seq, event_id, at, run_id, step_id, event, body, prev_hash, hash FROM audit"
                   " WHERE seq > %s ORDER BY seq LIMIT %s")
    CHANGE_WITH_REVERT = ("SELECT c.body, r.at, r.by FROM changes c LEFT JOIN reverts r USING(change_id)"
                          " WHERE c.change_id = %s")
    CHANGES_OF_RUN = ("SELECT c.body, r.at, r.by FROM changes c LEFT JOIN reverts r USING(change_id)"
                      " WHERE c.run_id = %s ORDER BY c.applied_at, c.id")
    CHANGES_OF_TARGET = ("SELECT c.body, r.at, r.by FROM changes c LEFT JOIN reverts r USING(change_id)"
                         " WHERE c.target = %s AND c.kind = %s ORDER BY c.applied_at, c.id")
    REVERT_OF = "SELECT change_id, run_id, reason, by, at, verified, detail FROM reverts WHERE change_id = %s"
    CHAINED_EVENT = (  # an event with its neighbours' links: one statement, one snapshot
        "SELECT a.seq, a.body, a.prev_hash, a.hash,"
        " (SELECT b.hash FROM audit b WHERE b.seq < a.seq ORDER BY b.seq DESC LIMIT 1),"
        " (SELECT c.prev_hash FROM audit c WHERE c.seq > a.seq ORDER BY c.seq LIMIT 1)"
        " FROM audit a WHERE a.event_id = %s")
    CHANGE_BODY = "SELECT body FROM changes WHERE change_id = %s"
    CHANGE_IDS_OF_RUN = "SELECT change_id FROM changes WHERE run_id = %s ORDER BY applied_at, id"
    ALL_CHANGE_IDS = "SELECT change_id FROM changes ORDER BY applied_at, id"
    CHANGE_BODIES_OF = "SELECT change_id, body FROM changes WHERE change_id = ANY(%s)"
    REVERTS_OF = ("SELECT change_id, run_id, reason, by, at, verified, detail FROM reverts"
                  " WHERE change_id = ANY(%s)")
    AUDIT_BODIES_OF = "SELECT event_id, seq, body FROM audit WHERE event_id = ANY(%s)"
    COUNT_KIND_SINCE = "SELECT COUNT(*) FROM changes WHERE kind = %s AND applied_at >= %s"
    COUNT_KIND_SINCE_IN_RUN = "SELECT COUNT(*) FROM changes WHERE kind = %s AND applied_at >= %s AND run_id = %s"
    COUNT_KIND_IN_RUN = "SELECT COUNT(*) FROM changes WHERE kind = %s AND run_id = %s"
    HEAD = "SELECT COUNT(*), (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1) FROM audit"
    HASH_CHUNK = "SELECT seq, hash FROM audit WHERE seq > %s ORDER BY seq LIMIT %s"
    RUN_IDS = "SELECT DISTINCT run_id FROM audit ORDER BY run_id"

    # -- reports: baseline, trust advice, review, reconciler, exfiltration history ----------
    # The same rows as SqliteSQL's, from jsonb instead of json_extract; `{where}` takes `kinds_filter`.
    BASELINE_CHANGE_BUCKETS = (
        "SELECT kind, substr(applied_at, 1, 13) AS h, mode, COUNT(*) FROM changes"
        " WHERE applied_at >= %s AND applied_at < %s{where} GROUP BY kind, substr(applied_at, 1, 13), mode")
    BASELINE_FIRST_LAST = ("SELECT MIN(applied_at), MAX(applied_at) FROM changes"
                           " WHERE kind = %s AND applied_at >= %s AND applied_at < %s")
    BASELINE_BATCHES = (
        "SELECT kind, n, COUNT(*) FROM (SELECT kind, COUNT(*) AS n FROM changes"
        " WHERE applied_at >= %s AND applied_at < %s{where} GROUP BY kind, run_id) AS b GROUP BY kind, n")
    BASELINE_APPROVALS = (
        "WITH s AS (SELECT"
        " MAX(CASE WHEN event = 'approval.requested' THEN (body::jsonb -> 'data') ->> 'kind' END) AS kind,"
        " MIN(CASE WHEN event = 'approval.requested' THEN at END) AS req,"
        " MIN(CASE WHEN event = 'approval.decided' THEN at END) AS dec,"
        " MAX(CASE WHEN event = 'approval.decided' THEN CASE (body::jsonb -> 'data') -> 'approved'"
        "  WHEN 'true'::jsonb THEN 1 WHEN 'false'::jsonb THEN 0 END END) AS ok,"
        " MAX(CASE WHEN event = 'approval.timeout' THEN 1 ELSE 0 END) AS timed_out,"
        " MAX(CASE WHEN event = 'approval.escalated' THEN 1 ELSE 0 END) AS escalated"
        " FROM audit WHERE event IN ('approval.requested', 'approval.decided', 'approval.timeout',"
        " 'approval.escalated') AND at >= %s AND at < %s GROUP BY run_id, step_id)"
        " SELECT kind, CAST(ROUND(EXTRACT(EPOCH FROM (dec::timestamptz - req::timestamptz))) AS INTEGER) AS secs,"
        " COUNT(*), SUM(CASE WHEN ok = 1 THEN 1 ELSE 0 END), SUM(CASE WHEN ok = 0 THEN 1 ELSE 0 END),"
        " SUM(timed_out), SUM(escalated)"
        " FROM s WHERE req IS NOT NULL{where} GROUP BY kind, secs")
    BASELINE_GUARDRAIL_OUTCOMES = (  # (JSON [kind, outcome], n), as SQLite's json_extract with two paths
        "SELECT jsonb_build_array((body::jsonb -> 'data') -> 'kind', (body::jsonb -> 'data') -> 'outcome')::text"
        " AS ko, COUNT(*) FROM audit WHERE event = 'guardrails.evaluated' AND at >= %s AND at < %s GROUP BY ko")
    BASELINE_GUARDRAIL_VERDICTS = (
        "SELECT kind, v.value ->> 'guardrail', v.value ->> 'outcome', COUNT(*)"
        " FROM (SELECT (body::jsonb -> 'data') ->> 'kind' AS kind, body::jsonb -> 'data' -> 'verdicts' AS vs"
        " FROM audit WHERE event = 'guardrails.evaluated' AND at >= %s AND at < %s"
        " AND (strpos(body, '\"outcome\":\"hold\"') > 0 OR strpos(body, '\"outcome\":\"deny\"') > 0)) AS g"
        " CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(g.vs) = 'array' THEN g.vs"
        " ELSE '[]'::jsonb END) AS v(value) WHERE true{where} GROUP BY 1, 2, 3")
    BASELINE_REVERTS = (
        "SELECT c.kind, c.mode, r.reason, COUNT(*) FROM reverts r JOIN changes c ON c.change_id = r.change_id"
        " WHERE c.applied_at >= %s AND c.applied_at < %s{where} GROUP BY c.kind, c.mode, r.reason")
    BASELINE_OVERRIDES = (
        "SELECT kind, mode, COUNT(*) FROM ("
        " SELECT c.change_id, c.kind, c.mode FROM reverts r JOIN changes c ON c.change_id = r.change_id"
        "  WHERE r.reason = 'rollback' AND c.automated = 1 AND c.applied_at >= %s AND c.applied_at < %s{where}"
        " UNION"
        " SELECT c.change_id, c.kind, c.mode FROM changes d"
        "  JOIN changes c ON c.target = d.target AND c.applied_at < d.applied_at"
        "  WHERE d.automated = 0 AND d.applied_at >= %s AND d.applied_at < %s"
        "  AND c.automated = 1 AND c.applied_at >= %s AND c.run_id <> d.run_id{where}"
        "  AND (c.body::jsonb -> 'inverse') ->> 'kind' = d.kind"
        "  AND NOT EXISTS (SELECT 1 FROM reverts r2 WHERE r2.change_id = c.change_id AND r2.at <= d.applied_at)"
        ") AS o GROUP BY kind, mode")
    TRUST_MODE_CHANGES = "SELECT at, body FROM audit WHERE event = 'trust.mode_changed' ORDER BY seq"
    TRUST_KNOWN_KINDS = "SELECT DISTINCT kind FROM changes"
    TRUST_KIND_SEEN = "SELECT 1 FROM changes WHERE kind = %s LIMIT 1"
    TRUST_EVIDENCE = ("SELECT COUNT(*), MIN(applied_at) FROM changes"
                      " WHERE kind = %s AND applied_at >= %s AND applied_at < %s AND mode = %s")
    REVIEW_LAST = "SELECT at, body FROM audit WHERE event = 'review.marked' ORDER BY seq DESC LIMIT 1"
    REVIEW_PENDING = (
        "SELECT c.change_id, c.run_id, c.kind, c.target, c.mode, c.body::jsonb ->> 'status',"
        " c.body::jsonb ->> 'requested_by', c.applied_at, c.expires_at, r.reason, r.by, r.at,"
        " c.body::jsonb ->> 'approved_by'"
        " FROM changes c LEFT JOIN reverts r ON r.change_id = c.change_id"
        " WHERE c.automated = 1 AND c.applied_at > %s AND c.applied_at <= %s ORDER BY c.applied_at, c.id")
    RECONCILE_EXPIRED = (
        "SELECT c.body FROM changes c LEFT JOIN reverts r USING(change_id)"
        " WHERE r.change_id IS NULL AND c.expires_at IS NOT NULL AND c.expires_at < %s ORDER BY c.expires_at")
    RECONCILE_LATEST = (
        "SELECT c.body, r.change_id IS NOT NULL FROM changes c LEFT JOIN reverts r USING(change_id)"
        " WHERE c.id IN (SELECT MAX(id) FROM changes GROUP BY kind, target)"
        " ORDER BY c.applied_at DESC LIMIT %s")
    EXFIL_HISTORY = ("SELECT run_id, body FROM audit WHERE event = 'exfiltration.classified' AND at >= %s"
                     " AND (body::jsonb -> 'data') ->> 'user' = %s ORDER BY seq")
    ROW_COUNT = "SELECT (SELECT COUNT(*) FROM changes) + (SELECT COUNT(*) FROM audit) + (SELECT COUNT(*) FROM reverts)"
    REFRESH_STATISTICS = "ANALYZE audit, changes, reverts"

    @staticmethod
    def kinds_filter(column: str, kinds: list[str] | None) -> tuple[str, list[Any]]:
        if kinds is None:
            return "", []
        return f" AND {column} = ANY(%s)", [list(kinds)]


class _PgTx:
    """The `Tx` interface over one pooled psycopg connection."""

    def __init__(self, conn: Any):
        self.conn = conn

    def one(self, sql: str, args: Any = ()) -> tuple | None:
        return self.conn.execute(sql, args or None).fetchone()

    def all(self, sql: str, args: Any = ()) -> list[tuple]:
        return self.conn.execute(sql, args or None).fetchall()

    def run(self, sql: str, args: Any = ()) -> int:
        return self.conn.execute(sql, args or None).rowcount

    def many(self, sql: str, rows: list[tuple]) -> int:
        if not rows:
            return 0
        with self.conn.cursor() as cur:
            cur.executemany(sql, rows)
            return cur.rowcount


def _where(url: str) -> str:
    """host:port/db of a URL, without credentials (for error messages)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


class PostgresLedger(LedgerCore):
    """The ledger in one PostgreSQL database, through a psycopg connection pool."""

    SQL = PostgresSQL
    backend = "postgres"

    def __init__(self, url: str, pool_size: int = POOL_SIZE):
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.url = url
        try:  # one direct connection first: a wrong URL fails at once, not after the pool's retries
            with psycopg.connect(url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S)) as conn, \
                    conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))  # workers starting together
                conn.execute(_SCHEMA)
                install(conn)  # the writes' server functions, when missing or changed
        except psycopg.OperationalError as exc:
            raise LedgerUnavailable(f"the PostgreSQL ledger at {_where(url)} cannot be reached "
                                    f"({type(exc).__name__})") from None
        self._pool = ConnectionPool(url, min_size=1, max_size=max(1, pool_size), open=False,
                                    kwargs={"autocommit": True}, name="handrail-ledger", timeout=60)
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except PoolTimeout:
            self._pool.close()
            raise LedgerUnavailable(f"the PostgreSQL ledger at {_where(url)} cannot be reached (PoolTimeout)") from None

    def close(self) -> None:
        self._pool.close()

    def _ids(self, values: list[str]) -> list[str]:
        return values

    @contextmanager
    def _read(self) -> Iterator[_PgTx]:
        with self._pool.connection() as conn:
            yield _PgTx(conn)

    @contextmanager
    def _write(self) -> Iterator[_PgTx]:
        """One transaction, serialised with every other ledger write on the ledger's advisory lock."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield _PgTx(conn)

    def read(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        """Run one read-only query (PostgreSQL SQL, `%s` parameters) and return its rows."""
        with self._pool.connection() as conn:
            return conn.execute(sql, args or None).fetchall()

    # -- writes: one server function each (handrail.gate.ledger_pg_functions) -------------------
    def _call(self, sql: str, args: tuple) -> tuple:
        """One write: a single statement in autocommit, so one transaction and one round trip."""
        with self._pool.connection() as conn:
            return conn.execute(sql, args).fetchone()

    def append(self, events: list[AuditEvent], *, known_new: bool = False) -> int:
        if not events:
            return 0
        return self._call(PgCalls.APPEND, (*_arrays(events), known_new))[0]

    def check_limits(self, kind: str, run_id: str, change_id: str, now: datetime,
                     per_hour: float | None, per_run: float | None,
                     ttl: timedelta = RESERVATION_TTL, audit: list[AuditEvent] = ()) -> LimitCheck:
        hour, run, reserved = self._call(PgCalls.CHECK_LIMITS, (
            *_arrays(audit), kind, run_id, change_id, iso(now), iso(now - timedelta(hours=1)), iso(now + ttl),
            per_hour, per_run))
        return LimitCheck(hour=hour, run=run, reserved=reserved)

    def begin_change(self, record: ChangeRecord, audit: list[AuditEvent] = ()) -> ChangeRecord:
        twin = [chained_twin(record)] if record.inverse is not None else []  # chained only if new
        stored = self._call(PgCalls.BEGIN_CHANGE, (*_arrays(audit), *_arrays(twin), *change_row(record)))
        return to_record(stored)

    def finish_change(self, record: ChangeRecord, event: AuditEvent | None = None) -> None:
        self._call(PgCalls.FINISH_CHANGE,
                   (*_arrays([event or chained_twin(record)]), record.change_id, record_body(record)))

    def record_revert(
        self, change_id: str, run_id: str, reason: str, by: str, at: datetime, verified: bool, detail: str,
        event: AuditEvent | None = None,
    ) -> bool:
        row = (change_id, run_id, reason, by, iso(at), int(verified), detail)
        return self._call(PgCalls.RECORD_REVERT, (*_arrays([event] if event else []), *row))[0]


    def keep_change(
        self, change_id: str, run_id: str, reason: str, by: str, at: datetime, detail: str, event: AuditEvent,
        holder_id: str, heir: ChangeRecord | None = None,
    ) -> str:
        events = [chained_twin(heir), event] if heir is not None else [event]
        return self._call(PgCalls.KEEP_CHANGE, (
            *_arrays(events), change_id, run_id, reason, by, iso(at), 1, detail, holder_id,
            record_body(heir) if heir is not None else None))[0]


def _arrays(events: list[AuditEvent]) -> list[list]:
    """Events as the functions take them: six parallel arrays of their `event_columns`."""
    columns = [event_columns(e) for e in events]
    return [[c[i] for c in columns] for i in range(6)]
