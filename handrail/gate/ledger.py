"""The ledger: every change with the state it replaced, and a tamper-evident audit trail.

Temporal's history is kept for days; the ledger is kept for good. It is SQLite under
HANDRAIL_HOME (plain SQL, portable to PostgreSQL). The audit table is append-only and
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
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from handrail.gate.models import AuditEvent, ChangeRecord, Mode
from handrail.gate.redact import redact, redact_record

GENESIS = "0" * 64

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
-- baseline, trust and review (handrail.trust.baseline): covering indexes so that figures over a
-- million rows are index-only scans with SQL aggregation.
CREATE INDEX IF NOT EXISTS changes_kind_hour ON changes(kind, substr(applied_at, 1, 13), mode, applied_at);
CREATE INDEX IF NOT EXISTS changes_kind_run ON changes(kind, run_id, applied_at);
CREATE INDEX IF NOT EXISTS changes_target ON changes(target, applied_at);
CREATE INDEX IF NOT EXISTS changes_automated_target ON changes(automated, applied_at, target, kind, run_id);
"""


_INSERT_AUDIT = (
    "INSERT INTO audit(event_id, at, run_id, step_id, event, body, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)"
)
_INSERT_CHANGE = (
    "INSERT OR IGNORE INTO changes(change_id, run_id, step_id, kind, target, mode, automated,"
    " applied_at, expires_at, body) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_REVERT = (
    "INSERT OR IGNORE INTO reverts(change_id, run_id, reason, by, at, verified, detail) VALUES (?,?,?,?,?,?,?)"
)


def _chained(prev: str, events: list[AuditEvent]) -> Iterator[tuple]:
    """Audit rows for events, each hashed onto the one before it."""
    for event in events:
        at = iso(event.at)
        body = canonical({"id": event.id, "at": at, "run_id": event.run_id, "step_id": event.step_id,
                          "event": event.event, "data": _redacted(event)})
        digest = chain_hash(prev, body)
        yield (event.id, at, event.run_id, event.step_id, event.event, body, prev, digest)
        prev = digest


def _redacted(event: AuditEvent) -> Any:
    """What the chain keeps of an event's data: secrets removed, except from a change record's
    before-state and inverse (`change.*` events), which are replayed and must stay exact —
    and which the `changes` row stores the same way, so the two still compare equal."""
    if event.event.startswith("change.") and isinstance(event.data, dict):
        return redact_record(event.data)
    return redact(event.data)


def chained_twin(record: ChangeRecord) -> AuditEvent:
    """The audit event that carries a change record into the hash chain (`change.<status>`).

    Its id is stable per change and status, so a retried write never chains it twice, and
    `Ledger.verified_change` finds it again to check the row against it.
    """
    return AuditEvent(id=f"{record.change_id}:change.{record.status}", at=datetime.now(timezone.utc),
                      run_id=record.run_id, step_id=record.step_id, event=f"change.{record.status}",
                      data=record.model_dump(mode="json"))


def canonical(value: Any) -> str:
    """Stable JSON: sorted keys, no spaces, UTF-8 — the form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def iso(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).isoformat(timespec="microseconds")


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + "\n" + body).encode("utf-8")).hexdigest()


class UntrustedRecord(ValueError):
    """A change or revert row no longer agrees with the hash chain: it must not be acted on."""

    def __init__(self, change_id: str, why: str):
        super().__init__(f"the ledger record of change {change_id} does not verify ({why}); refusing to act on it")
        self.change_id = change_id
        self.why = why


@dataclass
class VerifyResult:
    ok: bool
    rows: int
    first_bad_seq: int | None = None
    reason: str = ""
    bad_change: str | None = None  # a change or revert row that disagrees with its chained event


@dataclass
class RevertRow:
    change_id: str
    run_id: str
    reason: str
    by: str
    at: str
    verified: bool
    detail: str


class Ledger:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- audit -------------------------------------------------------------------------
    def append(self, events: list[AuditEvent], *, known_new: bool = False) -> int:
        """Append events to the chain; events already recorded (same id) are skipped.

        `known_new` skips that lookup for bulk imports and synthetic ledgers; a duplicate id
        then fails the whole batch instead of being skipped.
        """
        if not events:
            return 0
        with self._transaction():
            return self._append_locked(events, known_new)

    def _append_locked(self, events: list[AuditEvent], known_new: bool = False) -> int:
        if not known_new:
            events = self._unrecorded(events)
        row = self._db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        rows = list(_chained(row[0] if row else GENESIS, events))
        self._db.executemany(_INSERT_AUDIT, rows)
        return len(rows)

    def append_new(self, events: list[AuditEvent]) -> int:
        """`append` for events known to be new (imports, synthetic ledgers): no duplicate lookups."""
        return self.append(events, known_new=True)

    def _unrecorded(self, events: list[AuditEvent]) -> list[AuditEvent]:
        seen: set[str] = set()
        fresh = []
        for event in events:
            if event.id in seen or self._db.execute("SELECT 1 FROM audit WHERE event_id = ?", (event.id,)).fetchone():
                continue
            seen.add(event.id)
            fresh.append(event)
        return fresh

    def audit_rows(self, run_id: str | None = None) -> Iterator[dict[str, Any]]:
        sql = "SELECT seq, body, prev_hash, hash FROM audit"
        args: tuple = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            args = (run_id,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        for seq, body, prev, digest in rows:
            yield {"seq": seq, **json.loads(body), "prev_hash": prev, "hash": digest}

    def verify(self) -> VerifyResult:
        """Walk the chain from the start; report the first row whose hash does not fit."""
        prev = GENESIS
        count = 0
        with self._lock:
            cursor = self._db.execute(
                "SELECT seq, event_id, at, run_id, step_id, event, body, prev_hash, hash FROM audit ORDER BY seq"
            )
            for seq, event_id, at, run_id, step_id, event, body, stored_prev, digest in cursor:
                count += 1
                if stored_prev != prev:
                    return VerifyResult(False, count, seq, "its previous-row hash does not match the row before it")
                if chain_hash(prev, body) != digest:
                    return VerifyResult(False, count, seq, "its content does not match its hash")
                try:
                    parsed = json.loads(body)
                except ValueError:
                    return VerifyResult(False, count, seq, "its body is not valid JSON")
                columns = {"id": event_id, "at": at, "run_id": run_id, "step_id": step_id, "event": event}
                if any(parsed.get(k) != v for k, v in columns.items()):
                    return VerifyResult(False, count, seq, "its indexed columns differ from its hashed body")
                prev = digest
        untrusted = self.first_untrusted_change()
        if untrusted is not None:
            return VerifyResult(False, count, None, untrusted.why, bad_change=untrusted.change_id)
        return VerifyResult(True, count)

    # -- changes -----------------------------------------------------------------------
    def begin_change(self, record: ChangeRecord) -> ChangeRecord:
        """Record the intent and before-state; a retry gets the first attempt's record back.

        Keeping the first before-state matters: if the tool call succeeded but the activity
        died before finishing, the retry would otherwise read the changed state as "before".
        An intent that already carries its inverse (written ahead of the tool call) is
        chained at once, since a rollback may act on it before it is finished.
        """
        row = self._change_row(record)
        if record.inverse is None:
            with self._lock:
                self._db.execute(_INSERT_CHANGE, row)
        else:
            with self._transaction():
                if self._db.execute(_INSERT_CHANGE, row).rowcount == 1:
                    self._append_locked([chained_twin(record)])
        stored = self.change(record.change_id)
        assert stored is not None
        return stored

    def finish_change(self, record: ChangeRecord, event: AuditEvent | None = None) -> None:
        """Store the record's new state together with its chained twin, `change.<status>` (or
        `event`), in one transaction: the row is only an index, the chain is the record."""
        body = canonical(redact_record(record.model_dump(mode="json")))
        with self._transaction():
            self._db.execute("UPDATE changes SET body = ? WHERE change_id = ?", (body, record.change_id))
            self._append_locked([event or chained_twin(record)])

    @staticmethod
    def _change_row(record: ChangeRecord) -> tuple:
        return (
            record.change_id,
            record.run_id,
            record.step_id,
            record.change.kind,
            record.change.target,
            record.mode.value,
            int(record.mode != Mode.APPROVE),
            iso(record.applied_at),
            iso(record.expires_at) if record.expires_at else None,
            canonical(redact_record(record.model_dump(mode="json"))),
        )

    def change(self, change_id: str) -> ChangeRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT c.body, r.at, r.by FROM changes c LEFT JOIN reverts r USING(change_id)"
                " WHERE c.change_id = ?",
                (change_id,),
            ).fetchone()
        return self._to_record(row) if row else None

    def changes_for_run(self, run_id: str) -> list[ChangeRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT c.body, r.at, r.by FROM changes c LEFT JOIN reverts r USING(change_id)"
                " WHERE c.run_id = ? ORDER BY c.applied_at, c.rowid",
                (run_id,),
            ).fetchall()
        return [self._to_record(row) for row in rows]

    @staticmethod
    def _to_record(row: tuple) -> ChangeRecord:
        body, reverted_at, reverted_by = row
        record = ChangeRecord.model_validate_json(body)
        if reverted_at:
            record.reverted_at = datetime.fromisoformat(reverted_at)
            record.reverted_by = reverted_by
        return record

    def record_revert(
        self, change_id: str, run_id: str, reason: str, by: str, at: datetime, verified: bool, detail: str,
        event: AuditEvent | None = None,
    ) -> bool:
        """Mark a change undone; False if it already was (so a revert is never counted twice).

        With `event` (the chained `change.reverted`), the row and the event land together.
        """
        row = (change_id, run_id, reason, by, iso(at), int(verified), detail)
        if event is None:
            with self._lock:
                return self._db.execute(_INSERT_REVERT, row).rowcount == 1
        with self._transaction():
            inserted = self._db.execute(_INSERT_REVERT, row).rowcount == 1
            if inserted:
                self._append_locked([event])
        return inserted

    def revert_of(self, change_id: str) -> RevertRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT change_id, run_id, reason, by, at, verified, detail FROM reverts WHERE change_id = ?",
                (change_id,),
            ).fetchone()
        return RevertRow(*row[:5], bool(row[5]), row[6]) if row else None

    # -- records checked against the chain (item: records you can trust) ----------------
    def _chained_event(self, event_id: str) -> dict[str, Any] | None:
        """The audit event with this id, if it still fits its own hash and both neighbours."""
        with self._lock:
            row = self._db.execute("SELECT seq, body, prev_hash, hash FROM audit WHERE event_id = ?",
                                   (event_id,)).fetchone()
            if row is None:
                return None
            seq, body, prev, digest = row
            before = self._db.execute("SELECT hash FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT 1",
                                      (seq,)).fetchone()
            after = self._db.execute("SELECT prev_hash FROM audit WHERE seq > ? ORDER BY seq LIMIT 1",
                                     (seq,)).fetchone()
        if chain_hash(prev, body) != digest:
            raise ValueError(f"audit row {seq} does not match its hash")
        if (before[0] if before else GENESIS) != prev or (after is not None and after[0] != digest):
            raise ValueError(f"audit row {seq} no longer fits the chain around it")
        return json.loads(body)

    def verified_change(self, change_id: str) -> ChangeRecord | None:
        """The change as the hash chain recorded it, with its verified revert; None if unknown.

        Raises UntrustedRecord when the row and its chained event disagree, when the event is
        missing for a finished change, or when the event itself no longer fits the chain.
        """
        with self._lock:
            row = self._db.execute("SELECT body FROM changes WHERE change_id = ?", (change_id,)).fetchone()
        if row is None:
            return None
        stored = json.loads(row[0])
        try:
            chained = self._chained_event(f"{change_id}:change.{stored.get('status')}")
        except ValueError as exc:
            raise UntrustedRecord(change_id, str(exc)) from None
        if chained is None:
            if stored.get("status") == "pending" and stored.get("inverse") is None:
                return ChangeRecord.model_validate(stored)  # begun, never finished: nothing to undo
            raise UntrustedRecord(change_id, "no audit event records it")
        if chained.get("data") != stored:
            raise UntrustedRecord(change_id, "its row differs from the audit event that recorded it")
        record = ChangeRecord.model_validate(chained["data"])
        revert = self.verified_revert(change_id)
        if revert is not None:
            record.reverted_at = datetime.fromisoformat(revert.at)
            record.reverted_by = revert.by
        return record

    def verified_revert(self, change_id: str) -> RevertRow | None:
        """The change's revert, checked against its chained `change.reverted` event."""
        row = self.revert_of(change_id)
        try:
            chained = self._chained_event(f"{change_id}:reverted:change.reverted")
        except ValueError as exc:
            raise UntrustedRecord(change_id, str(exc)) from None
        if chained is None:
            if row is None:
                return None
            raise UntrustedRecord(change_id, "its revert row has no audit event")
        data = chained.get("data", {})
        if row is None:
            raise UntrustedRecord(change_id, "its revert row was removed")
        recorded = redact({"reason": row.reason, "by": row.by, "verified": row.verified, "detail": row.detail})
        if any(data.get(key) != value for key, value in recorded.items()):
            raise UntrustedRecord(change_id, "its revert row differs from the audit event that recorded it")
        return row

    def verified_changes_for_run(self, run_id: str) -> list[ChangeRecord | UntrustedRecord]:
        """Each of a run's changes in order, as verified records or the reason one cannot be trusted."""
        with self._lock:
            ids = [r[0] for r in self._db.execute(
                "SELECT change_id FROM changes WHERE run_id = ? ORDER BY applied_at, rowid", (run_id,))]
        out: list[ChangeRecord | UntrustedRecord] = []
        for change_id in ids:
            try:
                record = self.verified_change(change_id)
            except UntrustedRecord as exc:
                out.append(exc)
                continue
            if record is not None:
                out.append(record)
        return out

    def first_untrusted_change(self) -> UntrustedRecord | None:
        """The first change or revert row (in order of application) that disagrees with the chain."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT change_id FROM changes ORDER BY applied_at, rowid")]
        for change_id in ids:
            try:
                self.verified_change(change_id)
            except UntrustedRecord as exc:
                return exc
        return None

    def count_changes(self, kind: str, since: datetime, run_id: str | None = None) -> int:
        """Changes of a kind applied since a moment (the blast-radius guardrails' input)."""
        sql = "SELECT COUNT(*) FROM changes WHERE kind = ? AND applied_at >= ?"
        args: list[Any] = [kind, iso(since)]
        if run_id is not None:
            sql += " AND run_id = ?"
            args.append(run_id)
        with self._lock:
            return self._db.execute(sql, args).fetchone()[0]

    def count_run_changes(self, kind: str, run_id: str) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM changes WHERE kind = ? AND run_id = ?", (kind, run_id)
            ).fetchone()[0]

    def head(self) -> tuple[int, str]:
        """(number of audit rows, hash of the last one): what a signed checkpoint covers."""
        with self._lock:  # one statement: one snapshot, even with other processes appending
            count, digest = self._db.execute(
                "SELECT COUNT(*), (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1) FROM audit").fetchone()
        return count, digest or GENESIS

    def iter_hashes(self, chunk: int = 50_000) -> Iterator[str]:
        """Every audit row's hash in chain order, read in chunks (checkpoint verification)."""
        last = -1
        while True:
            with self._lock:
                rows = self._db.execute("SELECT seq, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
                                        (last, chunk)).fetchall()
            if not rows:
                return
            for _, digest in rows:
                yield digest
            last = rows[-1][0]

    def run_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT run_id FROM audit ORDER BY run_id")]


    # -- bulk reads and writes (baseline, trust, review, synthetic ledgers) ---------------
    def read(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        """Run one read-only query and return its rows (the baseline's SQL aggregation)."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def insert_change_rows(self, rows: list[tuple]) -> int:
        """Bulk-insert ledger rows for imports and synthetic ledgers (tests, benchmarks).

        Each row is (change_id, run_id, step_id, kind, target, mode, automated, applied_at,
        expires_at, body) with ISO-8601 UTC times (see `iso`) and body a ChangeRecord JSON.
        Existing change ids are kept, as with `begin_change`.
        """
        return self._insert_many(_INSERT_CHANGE, rows)

    def insert_revert_rows(self, rows: list[tuple]) -> int:
        """Bulk `record_revert`: rows of (change_id, run_id, reason, by, at, verified, detail)."""
        return self._insert_many(_INSERT_REVERT, rows)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One writer at a time, across threads (the lock) and processes (BEGIN IMMEDIATE)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _insert_many(self, sql: str, rows: list[tuple]) -> int:
        with self._transaction():
            before = self._db.total_changes
            self._db.executemany(sql, rows)
            return self._db.total_changes - before
