"""What both ledger backends share: hashing, canonical JSON, records, and every rule.

The ledger's rules (the hash chain, idempotent writes, "the first attempt's before-state
wins", records checked against the chain, blast-radius reservations) are written once,
here, against a tiny transaction interface (`Tx`: one, all, run, many). A backend
(`handrail.gate.ledger.Ledger` on SQLite, `handrail.gate.ledger_postgres.PostgresLedger`)
supplies its SQL — one `SQL` namespace per backend — and how to open a serialised write
transaction and a read. One exception, for the network's sake: PostgreSQL runs the six
chain writes as server functions, one round trip each (`ledger_pg_functions`, the rules
below restated in PL/pgSQL, method for method), so no write holds the ledger's lock
across a round trip. The shared test suite (tests/test_ledger_backends.py) holds both
backends to the same contract, chains written by many processes at once included.

Every write that may touch the chain runs inside `_write()`, which each backend makes the
single serialisation point of the ledger: SQLite's `BEGIN IMMEDIATE`, PostgreSQL's
`pg_advisory_xact_lock`. Inside it the chain head is read and extended, so appends from
many threads, processes or hosts form one linear chain with no gap, fork or duplicate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from handrail.gate.models import AuditEvent, ChangeRecord, Mode
from handrail.gate.redact import redact, redact_record

GENESIS = "0" * 64
RESERVATION_TTL = timedelta(minutes=15)  # a blast-radius reservation never applied stops counting after this
VERIFY_CHUNK = 20_000


def canonical(value: Any) -> str:
    """Stable JSON: sorted keys, no spaces, UTF-8 — the form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def iso(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).isoformat(timespec="microseconds")


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + "\n" + body).encode("utf-8")).hexdigest()


def _redacted(event: AuditEvent) -> Any:
    """What the chain keeps of an event's data: secrets removed, except from a change record's
    before-state and inverse (`change.*` events), which are replayed and must stay exact —
    and which the `changes` row stores the same way, so the two still compare equal."""
    if event.event.startswith("change.") and isinstance(event.data, dict):
        return redact_record(event.data)
    return redact(event.data)


def event_columns(event: AuditEvent) -> tuple[str, str, str, str | None, str, str]:
    """An event's audit columns before it is chained: (event_id, at, run_id, step_id, event, body),
    the body being the canonical JSON that is hashed."""
    at = iso(event.at)
    body = canonical({"id": event.id, "at": at, "run_id": event.run_id, "step_id": event.step_id,
                      "event": event.event, "data": _redacted(event)})
    return event.id, at, event.run_id, event.step_id, event.event, body


def chained_rows(seq: int, prev: str, events: list[AuditEvent]) -> Iterator[tuple]:
    """Audit rows (seq, event_id, at, run_id, step_id, event, body, prev_hash, hash) for events,
    numbered from `seq` and each hashed onto the one before it."""
    for event in events:
        columns = event_columns(event)
        digest = chain_hash(prev, columns[-1])
        yield (seq, *columns, prev, digest)
        prev = digest
        seq += 1


def chained_twin(record: ChangeRecord) -> AuditEvent:
    """The audit event that carries a change record into the hash chain (`change.<status>`).

    Its id is stable per change and status, so a retried write never chains it twice, and
    `verified_change` finds it again to check the row against it.
    """
    return AuditEvent(id=f"{record.change_id}:change.{record.status}", at=datetime.now(timezone.utc),
                      run_id=record.run_id, step_id=record.step_id, event=f"change.{record.status}",
                      data=record.model_dump(mode="json"))


def record_body(record: ChangeRecord) -> str:
    """The `changes` row's body: the record as canonical JSON, its secrets redacted but its
    before-state and inverse exact (they are replayed), as the chained twin keeps them."""
    return canonical(redact_record(record.model_dump(mode="json")))


def change_row(record: ChangeRecord) -> tuple:
    """The `changes` row of a record: (change_id, run_id, step_id, kind, target, mode, automated,
    applied_at, expires_at, body)."""
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
        record_body(record),
    )


def to_record(row: tuple) -> ChangeRecord:
    """(body, reverted_at, reverted_by) -> the record, with its revert if any."""
    body, reverted_at, reverted_by = row
    record = ChangeRecord.model_validate_json(body)
    if reverted_at:
        record.reverted_at = datetime.fromisoformat(reverted_at)
        record.reverted_by = reverted_by
    return record


class UntrustedRecord(ValueError):
    """A change or revert row no longer agrees with the hash chain: it must not be acted on."""

    def __init__(self, change_id: str, why: str):
        super().__init__(f"the ledger record of change {change_id} does not verify ({why}); refusing to act on it")
        self.change_id = change_id
        self.why = why


def change_event_id(change_id: str, stored: dict[str, Any]) -> str:
    """The id of the audit event that chained a change row in its current status."""
    return f"{change_id}:change.{stored.get('status')}"


def revert_event_id(change_id: str) -> str:
    return f"{change_id}:reverted:change.reverted"


def judge_change(change_id: str, stored: dict[str, Any], chained: dict[str, Any] | None) -> ChangeRecord:
    """The record a change row may be acted on as, given the audit event that chained it
    (None: no such event); raises UntrustedRecord when the two disagree."""
    if chained is None:
        if stored.get("status") == "pending" and stored.get("inverse") is None:
            return ChangeRecord.model_validate(stored)  # begun, never finished: nothing to undo
        raise UntrustedRecord(change_id, "no audit event records it")
    if chained.get("data") != stored:
        raise UntrustedRecord(change_id, "its row differs from the audit event that recorded it")
    return ChangeRecord.model_validate(chained["data"])


def judge_revert(change_id: str, row: "RevertRow | None", chained: dict[str, Any] | None) -> "RevertRow | None":
    """A change's revert row checked against its chained `change.reverted` event (None: none)."""
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


class LedgerUnavailable(RuntimeError):
    """The ledger's storage cannot be reached; the message says where, in one sentence."""


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


@dataclass
class LimitCheck:
    """What a blast-radius check saw, and whether it reserved a place for the change.

    `hour` and `run` count the changes already applied plus the live reservations of other
    steps (never the step's own), exactly what the guardrails compare with their limits.
    """

    hour: int
    run: int
    reserved: bool


class Tx(Protocol):
    """The four things the rules need from a connection, in the backend's own SQL dialect."""

    def one(self, sql: str, args: Any = ()) -> tuple | None: ...
    def all(self, sql: str, args: Any = ()) -> list[tuple]: ...
    def run(self, sql: str, args: Any = ()) -> int: ...
    def many(self, sql: str, rows: list[tuple]) -> int: ...


class LedgerCore:
    """The ledger's behaviour, whatever it is stored in. Backends set `SQL` and implement
    `_write` (a serialised write transaction), `_read` (a connection for reads), `_ids`
    (how a list of ids is bound as one parameter), `read` and `close`."""

    SQL: Any  # the backend's statements, by name
    backend = "?"

    # -- backend hooks ---------------------------------------------------------------------
    def _write(self) -> AbstractContextManager[Tx]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Tx]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _ids(self, values: list[str]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, sql: str, args: tuple | list = ()) -> list[tuple]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def kinds_filter(self, column: str, kinds: list[str] | None) -> tuple[str, list[Any]]:
        """` AND column IN (...)` in the backend's dialect, and its arguments (baseline queries)."""
        return self.SQL.kinds_filter(column, kinds)

    def query(self, name: str, args: tuple | list = (), where: str = "") -> list[tuple]:
        """Run one of the backend's named report queries (`SQL.<name>`; `where` fills `{where}`).

        The baseline, trust, review and reconciler modules ask by name, so each backend keeps
        its own SQL for them and both give the same rows.
        """
        return self.read(getattr(self.SQL, name).replace("{where}", where), args)

    # -- audit -------------------------------------------------------------------------
    def append(self, events: list[AuditEvent], *, known_new: bool = False) -> int:
        """Append events to the chain; events already recorded (same id) are skipped.

        `known_new` skips that lookup for bulk imports and synthetic ledgers; a duplicate id
        then fails the whole batch instead of being skipped.
        """
        if not events:
            return 0
        with self._write() as tx:
            return self._append_in(tx, events, known_new)

    def append_new(self, events: list[AuditEvent]) -> int:
        """`append` for events known to be new (imports, synthetic ledgers): no duplicate lookups."""
        return self.append(events, known_new=True)

    def _append_in(self, tx: Tx, events: list[AuditEvent], known_new: bool = False) -> int:
        """Extend the chain inside a write transaction (which holds the ledger's write lock)."""
        if not events:
            return 0
        if known_new:
            head = tx.one(self.SQL.HEAD_ROW)
        else:
            events, head = self._unrecorded_and_head(tx, events)
        if not events:
            return 0
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
        rows = list(chained_rows(seq, prev, events))
        tx.many(self.SQL.INSERT_AUDIT, rows)
        return len(rows)

    def _unrecorded_and_head(self, tx: Tx, events: list[AuditEvent]) -> tuple[list[AuditEvent], tuple | None]:
        """The events not yet recorded, and the chain's head: one statement (one round trip on
        PostgreSQL, where every append pays it)."""
        rows = tx.all(self.SQL.RECORDED_IDS_AND_HEAD, (self._ids(list({e.id for e in events})),))
        known = {r[0] for r in rows if r[0] is not None}
        head = next(((r[1], r[2]) for r in rows if r[0] is None), None)
        fresh = []
        for event in events:
            if event.id in known:
                continue
            known.add(event.id)
            fresh.append(event)
        return fresh, head

    def audit_rows(self, run_id: str | None = None) -> Iterator[dict[str, Any]]:
        with self._read() as tx:
            if run_id is None:
                rows = tx.all(self.SQL.AUDIT_ROWS)
            else:
                rows = tx.all(self.SQL.AUDIT_ROWS_OF_RUN, (run_id,))
        for seq, body, prev, digest in rows:
            yield {"seq": seq, **json.loads(body), "prev_hash": prev, "hash": digest}

    def verify(self) -> VerifyResult:
        """Walk the chain from the start; report the first row whose hash does not fit."""
        prev = GENESIS
        count = 0
        last = -1
        for rows in self._in_chunks(self.SQL.AUDIT_CHUNK, VERIFY_CHUNK):
            for seq, event_id, at, run_id, step_id, event, body, stored_prev, digest in rows:
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
            last = rows[-1][0]
        untrusted = self.first_untrusted_change(chain_checked_to=last)
        if untrusted is not None:
            return VerifyResult(False, count, None, untrusted.why, bad_change=untrusted.change_id)
        return VerifyResult(True, count)

    # -- changes -----------------------------------------------------------------------
    def begin_change(self, record: ChangeRecord, audit: list[AuditEvent] = ()) -> ChangeRecord:
        """Record the intent and before-state; a retry gets the first attempt's record back.

        Keeping the first before-state matters: if the tool call succeeded but the activity
        died before finishing, the retry would otherwise read the changed state as "before".
        An intent that already carries its inverse (written ahead of the tool call) is
        chained at once, since a rollback may act on it before it is finished. The change's
        blast-radius reservation, if any, becomes the change itself in the same transaction.
        `audit`: events that rode along with the step, chained first in the same transaction.
        """
        with self._write() as tx:
            inserted = tx.run(self.SQL.INSERT_CHANGE, change_row(record)) == 1
            if inserted:
                tx.run(self.SQL.DELETE_RESERVATION, (record.change_id,))
            twin = [chained_twin(record)] if inserted and record.inverse is not None else []
            self._append_in(tx, [*audit, *twin])  # the step's audit, then the intent: one append
            stored = tx.one(self.SQL.CHANGE_WITH_REVERT, (record.change_id,))
        assert stored is not None
        return to_record(stored)

    def finish_change(self, record: ChangeRecord, event: AuditEvent | None = None) -> None:
        """Store the record's new state together with its chained twin, `change.<status>` (or
        `event`), in one transaction: the row is only an index, the chain is the record."""
        with self._write() as tx:
            tx.run(self.SQL.UPDATE_CHANGE_BODY, (record_body(record), record.change_id))
            self._append_in(tx, [event or chained_twin(record)])

    def change(self, change_id: str) -> ChangeRecord | None:
        with self._read() as tx:
            row = tx.one(self.SQL.CHANGE_WITH_REVERT, (change_id,))
        return to_record(row) if row else None

    def changes_of_target(self, kind: str, target: str) -> list[ChangeRecord]:
        """Every change of a kind to one target, oldest first, with its revert if any (the rows,
        not yet checked against the chain): who may hold a state (`handrail.gate.holders`).
        Read through the `changes_target` index on both backends."""
        with self._read() as tx:
            rows = tx.all(self.SQL.CHANGES_OF_TARGET, (target, kind))
        return [to_record(row) for row in rows]

    def changes_for_run(self, run_id: str) -> list[ChangeRecord]:
        with self._read() as tx:
            rows = tx.all(self.SQL.CHANGES_OF_RUN, (run_id,))
        return [to_record(row) for row in rows]

    def record_revert(
        self, change_id: str, run_id: str, reason: str, by: str, at: datetime, verified: bool, detail: str,
        event: AuditEvent | None = None,
    ) -> bool:
        """Mark a change undone; False if it already was (so a revert is never counted twice).

        With `event` (the chained `change.reverted`), the row and the event land together.
        """
        row = (change_id, run_id, reason, by, iso(at), int(verified), detail)
        with self._write() as tx:
            inserted = tx.run(self.SQL.INSERT_REVERT, row) == 1
            if inserted and event is not None:
                self._append_in(tx, [event])
        return inserted

    def keep_change(
        self, change_id: str, run_id: str, reason: str, by: str, at: datetime, detail: str, event: AuditEvent,
        holder_id: str, heir: ChangeRecord | None = None,
    ) -> str:
        """Mark a change undone without touching its tool, because another run's change still
        holds the state (`handrail.gate.holders`): one transaction, so no crash or concurrent
        writer can leave half of it.

        `heir` (a hand-over): the holder's record rewritten to carry the change's before-state
        and inverse, chained as its twin (`change.applied`) before `event` (the chained
        `change.reverted`). Returns "kept"; "already" when the change was undone meanwhile
        (nothing written: the first word stands); "moved" when the holder was undone meanwhile,
        or, for a hand-over, is no longer `unchanged` (another change handed over to it first):
        nothing is written and the caller looks again. The check and the write are under the
        ledger's write lock, so two changes holding each other's state can never both be kept.
        """
        row = (change_id, run_id, reason, by, iso(at), 1, detail)
        with self._write() as tx:
            if tx.one(self.SQL.REVERT_OF, (change_id,)) is not None:
                return "already"
            holder = tx.one(self.SQL.CHANGE_WITH_REVERT, (holder_id,))
            if holder is None or holder[1] is not None:
                return "moved"
            twin: list[AuditEvent] = []
            if heir is not None:
                if json.loads(holder[0]).get("status") != "unchanged":
                    return "moved"
                tx.run(self.SQL.UPDATE_CHANGE_BODY, (record_body(heir), heir.change_id))
                twin = [chained_twin(heir)]
            tx.run(self.SQL.INSERT_REVERT, row)
            self._append_in(tx, [*twin, event])
        return "kept"

    def revert_of(self, change_id: str) -> RevertRow | None:
        with self._read() as tx:
            row = tx.one(self.SQL.REVERT_OF, (change_id,))
        return RevertRow(*row[:5], bool(row[5]), row[6]) if row else None

    # -- records checked against the chain ------------------------------------------------
    def _chained_event(self, event_id: str) -> dict[str, Any] | None:
        """The audit event with this id, if it still fits its own hash and both neighbours."""
        with self._read() as tx:
            row = tx.one(self.SQL.CHAINED_EVENT, (event_id,))
        if row is None:
            return None
        seq, body, prev, digest, before, after = row
        if chain_hash(prev, body) != digest:
            raise ValueError(f"audit row {seq} does not match its hash")
        if (before if before is not None else GENESIS) != prev or (after is not None and after != digest):
            raise ValueError(f"audit row {seq} no longer fits the chain around it")
        return json.loads(body)

    def verified_change(self, change_id: str) -> ChangeRecord | None:
        """The change as the hash chain recorded it, with its verified revert; None if unknown.

        Raises UntrustedRecord when the row and its chained event disagree, when the event is
        missing for a finished change, or when the event itself no longer fits the chain.
        """
        with self._read() as tx:
            row = tx.one(self.SQL.CHANGE_BODY, (change_id,))
        if row is None:
            return None
        stored = json.loads(row[0])
        try:
            chained = self._chained_event(change_event_id(change_id, stored))
        except ValueError as exc:
            raise UntrustedRecord(change_id, str(exc)) from None
        record = judge_change(change_id, stored, chained)
        if chained is None:
            return record  # begun, never finished: nothing to undo
        revert = self.verified_revert(change_id)
        if revert is not None:
            record.reverted_at = datetime.fromisoformat(revert.at)
            record.reverted_by = revert.by
        return record

    def verified_revert(self, change_id: str) -> RevertRow | None:
        """The change's revert, checked against its chained `change.reverted` event."""
        row = self.revert_of(change_id)
        try:
            chained = self._chained_event(revert_event_id(change_id))
        except ValueError as exc:
            raise UntrustedRecord(change_id, str(exc)) from None
        return judge_revert(change_id, row, chained)

    def verified_revert_event(self, change_id: str) -> dict[str, Any] | None:
        """The data of the change's chained `change.reverted` event, once its revert row is
        checked against it (None: not reverted): what a revert said beyond its row, e.g. that
        the change was kept because another run holds its state."""
        if self.verified_revert(change_id) is None:
            return None
        chained = self._chained_event(revert_event_id(change_id))
        return (chained or {}).get("data")

    def verified_changes_for_run(self, run_id: str) -> list[ChangeRecord | UntrustedRecord]:
        """Each of a run's changes in order, as verified records or the reason one cannot be trusted."""
        with self._read() as tx:
            ids = [r[0] for r in tx.all(self.SQL.CHANGE_IDS_OF_RUN, (run_id,))]
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

    def first_untrusted_change(self, chain_checked_to: int = 0) -> UntrustedRecord | None:
        """The first change or revert row (in order of application) that disagrees with the chain.

        `chain_checked_to`: the audit rows up to this seq were just walked and found intact (as
        `verify` does), so the events recording changes among them need no neighbour checks and
        are read in bulk, a thousand changes a query; any other event is checked on its own.
        """
        with self._read() as tx:
            ids = [r[0] for r in tx.all(self.SQL.ALL_CHANGE_IDS)]
        for start in range(0, len(ids), 1000):
            found = self._first_untrusted_of(ids[start:start + 1000], chain_checked_to)
            if found is not None:
                return found
        return None

    def _first_untrusted_of(self, ids: list[str], chain_checked_to: int) -> UntrustedRecord | None:
        with self._read() as tx:
            bodies = {cid: json.loads(body) for cid, body in tx.all(self.SQL.CHANGE_BODIES_OF, (self._ids(ids),))}
            reverts = {r[0]: RevertRow(*r[:5], bool(r[5]), r[6])
                       for r in tx.all(self.SQL.REVERTS_OF, (self._ids(ids),))}
            wanted = [change_event_id(cid, body) for cid, body in bodies.items()] + [revert_event_id(c) for c in ids]
            events = {eid: (seq, body) for eid, seq, body in tx.all(self.SQL.AUDIT_BODIES_OF, (self._ids(wanted),))}
        for change_id in ids:
            if change_id not in bodies:
                continue  # removed since the ids were read: the chain walk speaks for the audit
            stored = bodies[change_id]
            checked = [events.get(change_event_id(change_id, stored)), events.get(revert_event_id(change_id))]
            try:
                if any(e is not None and e[0] > chain_checked_to for e in checked):
                    self.verified_change(change_id)  # appended after the walk: checked on its own
                    continue
                chained, reverted = (json.loads(e[1]) if e is not None else None for e in checked)
                judge_change(change_id, stored, chained)
                if chained is not None:  # as verified_change: a change never finished has no revert to check
                    judge_revert(change_id, reverts.get(change_id), reverted)
            except UntrustedRecord as exc:
                return exc
        return None

    # -- blast radius ------------------------------------------------------------------
    def count_changes(self, kind: str, since: datetime, run_id: str | None = None) -> int:
        """Changes of a kind applied since a moment (the blast-radius guardrails' input)."""
        with self._read() as tx:
            if run_id is None:
                return tx.one(self.SQL.COUNT_KIND_SINCE, (kind, iso(since)))[0]
            return tx.one(self.SQL.COUNT_KIND_SINCE_IN_RUN, (kind, iso(since), run_id))[0]

    def count_run_changes(self, kind: str, run_id: str) -> int:
        with self._read() as tx:
            return tx.one(self.SQL.COUNT_KIND_IN_RUN, (kind, run_id))[0]

    def check_limits(self, kind: str, run_id: str, change_id: str, now: datetime,
                     per_hour: float | None, per_run: float | None,
                     ttl: timedelta = RESERVATION_TTL, audit: list[AuditEvent] = ()) -> LimitCheck:
        """Count and reserve in one serialised transaction, so checks on many workers at the
        same instant cannot pass a limit together.

        Counts are changes of `kind` applied in the hour before `now` (and in `run_id`), plus
        the live reservations of other changes. If one more change stays within both limits
        (None: no limit), a reservation for `change_id` is written: `begin_change` turns it
        into the change; a step that is never applied (denied, held, failed) lets it expire
        after `ttl`. A retried check finds its own reservation and does not count it.
        `audit`: events that rode along with the check, chained in the same transaction.
        """
        now_s, since = iso(now), iso(now - timedelta(hours=1))
        with self._write() as tx:
            self._append_in(tx, list(audit))
            tx.run(self.SQL.DELETE_EXPIRED_RESERVATIONS, (now_s,))
            hour, run, held_hour, held_run, applied = tx.one(
                self.SQL.LIMIT_COUNTS, {"kind": kind, "since": since, "run_id": run_id, "change_id": change_id})
            hour, run = hour + held_hour, run + held_run
            fits = (per_hour is None or hour + 1 <= per_hour) and (per_run is None or run + 1 <= per_run)
            admitted = fits and not applied
            if admitted:
                tx.run(self.SQL.UPSERT_RESERVATION, (change_id, run_id, kind, now_s, iso(now + ttl)))
        return LimitCheck(hour=hour, run=run, reserved=admitted)

    # -- checkpoints -------------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        """(number of audit rows, hash of the last one): what a signed checkpoint covers."""
        with self._read() as tx:  # one statement: one snapshot, even with other processes appending
            count, digest = tx.one(self.SQL.HEAD)
        return count, digest or GENESIS

    def iter_hashes(self, chunk: int = 50_000) -> Iterator[str]:
        """Every audit row's hash in chain order, read in chunks (checkpoint verification)."""
        for rows in self._in_chunks(self.SQL.HASH_CHUNK, chunk):
            for _, digest in rows:
                yield digest

    def _in_chunks(self, sql: str, size: int) -> Iterator[list[tuple]]:
        """The rows of a query paged by seq (`seq > ? … LIMIT ?`, seq first), a short read each:
        no read holds a snapshot (or SQLite's lock) across the whole chain."""
        last = -1
        while True:
            with self._read() as tx:
                rows = tx.all(sql, (last, size))
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def run_ids(self) -> list[str]:
        with self._read() as tx:
            return [r[0] for r in tx.all(self.SQL.RUN_IDS)]

    # -- bulk writes (imports, synthetic ledgers) -----------------------------------------
    def refresh_statistics(self) -> None:
        """After a bulk load: let the query planner see the new rows (PostgreSQL's ANALYZE; a
        no-op on SQLite, whose report queries pin their plans). Without it, the first baseline
        over a freshly imported PostgreSQL ledger may plan for empty tables."""
        if self.SQL.REFRESH_STATISTICS:
            with self._read() as tx:
                tx.run(self.SQL.REFRESH_STATISTICS)

    def insert_change_rows(self, rows: list[tuple]) -> int:
        """Bulk-insert ledger rows for imports and synthetic ledgers (tests, benchmarks).

        Each row is (change_id, run_id, step_id, kind, target, mode, automated, applied_at,
        expires_at, body) with ISO-8601 UTC times (see `iso`) and body a ChangeRecord JSON.
        Existing change ids are kept, as with `begin_change`.
        """
        with self._write() as tx:
            return tx.many(self.SQL.INSERT_CHANGE, rows)

    def insert_revert_rows(self, rows: list[tuple]) -> int:
        """Bulk `record_revert`: rows of (change_id, run_id, reason, by, at, verified, detail)."""
        with self._write() as tx:
            return tx.many(self.SQL.INSERT_REVERT, rows)
