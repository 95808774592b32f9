"""Move an installation from its SQLite ledger to PostgreSQL (`handrail ledger migrate --to …`).

What moves: the audit chain row for row with the hashes it stored (so the chain, its head and
every signed checkpoint stay valid: nothing is re-hashed), the change records with their
before-states and inverses, the reverts, the intel store's blobs and the intel sync's memory.
Blast-radius reservations are not copied: they live 15 minutes and the workers are stopped.

The rules, in order:

1. The SQLite chain must verify, and match the signed checkpoints under HANDRAIL_HOME, or
   nothing is copied (a broken ledger is not laundered into a fresh database).
2. The target must be empty, or hold this very chain: a prefix of it (an interrupted
   migration: the rest is added) or all of it (a re-run: nothing to copy; if the workers
   have already appended after it, that is fine too). Any other chain is refused.
3. The ledger rows are written in one transaction under the ledger's own write lock, after
   checking the head has not moved: a worker writing meanwhile aborts the migration, never
   forks the chain. Changes and reverts keep existing rows (`ON CONFLICT DO NOTHING`).
4. Afterwards the PostgreSQL chain must verify, match the same signed checkpoints, end at
   the same head, and hold every change and revert row exactly as SQLite had them.

Built on the ledger's own backends (`open_ledger` schema and statements, its `_write`
transaction); this module adds no table of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from handrail.gate.checkpoints import verify_ledger
from handrail.gate.ledger import Ledger
from handrail.gate.ledger_postgres import PostgresLedger
from handrail.intel.state import IntelState
from handrail.intel.state_pg import PostgresIntelState
from handrail.intel.store import KINDS, IntelStore
from handrail.intel.store_pg import PostgresIntelStore

CHUNK = 5_000
CHANGE_COLUMNS = "change_id, run_id, step_id, kind, target, mode, automated, applied_at, expires_at, body"
REVERT_COLUMNS = "change_id, run_id, reason, by, at, verified, detail"


class MigrationRefused(Exception):
    """The migration cannot (or must not) go ahead; the message says why in one sentence."""


def where(url: str) -> str:
    """host:port/database of a URL, never its password (for messages and reports)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


@dataclass
class MigrationReport:
    source: str
    target: str
    audit_rows: int = 0
    audit_copied: int = 0
    head: str = ""
    already_migrated: bool = False
    changes: int = 0
    changes_copied: int = 0
    reverts: int = 0
    reverts_copied: int = 0
    intel_blobs_copied: dict[str, int] = field(default_factory=dict)
    intel_state_copied: dict[str, int] = field(default_factory=dict)
    target_rows: int = 0
    checkpoints: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True, "from": self.source, "to": self.target, "already_migrated": self.already_migrated,
            "audit": {"rows": self.audit_rows, "copied": self.audit_copied, "head": self.head,
                      "target_rows": self.target_rows},
            "changes": {"rows": self.changes, "copied": self.changes_copied},
            "reverts": {"rows": self.reverts, "copied": self.reverts_copied},
            "intel": {"blobs_copied": self.intel_blobs_copied, "state_copied": self.intel_state_copied},
            "verified": {"source": True, "target": True, "checkpoints": self.checkpoints},
        }


# -- reading the SQLite side in chunks ----------------------------------------------------
def _audit_rows(source: Ledger, skip: int) -> Iterator[list[tuple]]:
    """The source's audit rows (every column, stored hashes included) after the first `skip`."""
    last, seen = -1, 0
    while True:
        rows = source.read(source.SQL.AUDIT_CHUNK, (last, CHUNK))
        if not rows:
            return
        last = rows[-1][0]
        fresh = rows[max(0, skip - seen):]
        seen += len(rows)
        if fresh:
            yield fresh


def _table_rows(source: Ledger, table: str, columns: str) -> Iterator[list[tuple]]:
    """Every row of `changes` or `reverts` in insertion order (rowid), in chunks."""
    last = -1
    while True:
        rows = source.read(f"SELECT rowid, {columns} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                           (last, CHUNK))
        if not rows:
            return
        last = rows[-1][0]
        yield [tuple(r[1:]) for r in rows]


def _count(ledger, table: str) -> int:
    return ledger.read(f"SELECT COUNT(*) FROM {table}")[0][0]


# -- the checks ------------------------------------------------------------------------
def _verified_source(source: Ledger, path: Path, home: Path) -> None:
    result = source.verify()
    if not result.ok:
        where_bad = f"change {result.bad_change}" if result.bad_change else f"row {result.first_bad_seq}"
        raise MigrationRefused(f"The SQLite ledger at {path} does not verify ({where_bad}: {result.reason}); "
                               "nothing was copied.")
    signed = verify_ledger(home, source)
    if not signed.ok:
        raise MigrationRefused(f"The SQLite ledger at {path} does not match its signed checkpoints "
                               f"({signed.reason}); nothing was copied.")


def _common_prefix(source: Ledger, target: PostgresLedger) -> tuple[int, int]:
    """(source rows, target rows) once the shorter chain is known to be the other's prefix."""
    n_src, _ = source.head()
    n_dst, _ = target.head()
    for n, (a, b) in enumerate(zip_longest(source.iter_hashes(), target.iter_hashes()), 1):
        if a is None or b is None:
            break
        if a != b:
            raise MigrationRefused(
                f"The target database already holds a different audit chain (row {n} differs); migrate into an "
                "empty database or into the one this ledger was migrated to.")
    return n_src, n_dst


def _same_rows(source: Ledger, target: PostgresLedger, table: str, columns: str, exact: bool) -> int:
    """Every source row of `table` is in the target (identical when `exact`); returns how many."""
    total = 0
    for chunk in _table_rows(source, table, columns):
        ids = [r[0] for r in chunk]
        found = {r[0]: tuple(r) for r in target.read(
            f"SELECT {columns} FROM {table} WHERE change_id = ANY(%s)", (ids,))}
        for row in chunk:
            there = found.get(row[0])
            if there is None or (exact and there != tuple(row)):
                raise MigrationRefused(f"After copying, the {table[:-1]} {row[0]} is missing or different in "
                                       "PostgreSQL; the target was left as it is, check it before using it.")
        total += len(chunk)
    return total


# -- the copy --------------------------------------------------------------------------
def _copy_ledger(source: Ledger, target: PostgresLedger, n_src: int, n_dst: int, report: MigrationReport) -> None:
    expected = target.head()
    with target._write() as tx:  # the ledger's write lock: no worker appends in between
        if tx.one(target.SQL.HEAD) != (expected[0], expected[1] if expected[0] else None):
            raise MigrationRefused("The target ledger changed while migrating (a worker is writing to it); "
                                   "stop the workers and run the migration again.")
        if n_dst < n_src:
            for rows in _audit_rows(source, n_dst):
                tx.many(target.SQL.INSERT_AUDIT, rows)
                report.audit_copied += len(rows)
        before = tx.one("SELECT (SELECT COUNT(*) FROM changes), (SELECT COUNT(*) FROM reverts)")
        for rows in _table_rows(source, "changes", CHANGE_COLUMNS):
            tx.many(target.SQL.INSERT_CHANGE, rows)
        for rows in _table_rows(source, "reverts", REVERT_COLUMNS):
            tx.many(target.SQL.INSERT_REVERT, rows)
        after = tx.one("SELECT (SELECT COUNT(*) FROM changes), (SELECT COUNT(*) FROM reverts)")
        report.changes_copied, report.reverts_copied = after[0] - before[0], after[1] - before[1]


def _copy_intel(home_store: Path, intel_db: Path, url: str, report: MigrationReport) -> None:
    """The intel store's blobs (content checked against their names) and the sync's memory."""
    source = IntelStore(home_store)
    target = PostgresIntelStore(url)
    try:
        for kind in sorted(KINDS):
            have = set(target.blob_keys(kind))
            copied = 0
            for key in source.blob_keys(kind):
                if key in have:
                    continue
                data = source._get_blob(kind, key)
                if kind != "cache" and hashlib.sha256(data).hexdigest() != key:
                    raise MigrationRefused(f"The intel store's {kind} {key} does not match its hash (the file was "
                                           "altered); remove it or restore it, then run the migration again.")
                target._put_blob(kind, key, data)
                copied += 1
            report.intel_blobs_copied[kind] = copied
        if intel_db.is_file():
            old = IntelState(intel_db, source)
            new = PostgresIntelState(url, target)
            try:
                report.intel_state_copied = new.import_rows(old)
            finally:
                new.close()
                old.close()
    finally:
        target.close()


def migrate(source_path: Path, url: str, home: Path) -> MigrationReport:
    """Copy the SQLite ledger at `source_path` and the intel store and state under `home` into
    the PostgreSQL database at `url`, verifying both chains (see the module docstring)."""
    source_path = Path(source_path)
    if not source_path.is_file():
        raise MigrationRefused(f"There is no SQLite ledger at {source_path}.")
    report = MigrationReport(source=str(source_path), target=where(url))
    source = Ledger(source_path)
    try:
        _verified_source(source, source_path, home)
        target = PostgresLedger(url)
        try:
            n_src, n_dst = _common_prefix(source, target)
            report.audit_rows, report.head = n_src, source.head()[1]
            report.already_migrated = n_dst >= n_src
            _copy_ledger(source, target, n_src, n_dst, report)
            _copy_intel(home / "store", home / "intel.db", url, report)
            result = target.verify()
            if not result.ok:
                raise MigrationRefused(f"The PostgreSQL ledger does not verify after copying (row "
                                       f"{result.first_bad_seq}: {result.reason}).")
            report.target_rows = result.rows
            signed = verify_ledger(home, target)  # the same chain: the same checkpoints vouch for it
            if not signed.ok:
                raise MigrationRefused(f"The PostgreSQL ledger does not match the signed checkpoints after "
                                       f"copying ({signed.reason}).")
            report.checkpoints = signed.checked
            if n_dst <= n_src and target.head() != source.head():
                raise MigrationRefused("The PostgreSQL chain does not end at the SQLite chain's head after copying.")
            exact = n_dst <= n_src  # workers may since have finished a change begun before the move
            report.changes = _same_rows(source, target, "changes", CHANGE_COLUMNS, exact)
            report.reverts = _same_rows(source, target, "reverts", REVERT_COLUMNS, exact)
        finally:
            target.close()
    finally:
        source.close()
    return report
