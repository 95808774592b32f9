"""What the intel sync has done to the tools, kept between syncs (activities only).

One SQLite file (``HANDRAIL_HOME/intel.db``), or the ``intel_*`` tables beside the ledger
when it is on PostgreSQL (:mod:`handrail.intel.state_pg`: every worker shares one memory),
holds small rows that point at content-addressed sets in the
:class:`~handrail.intel.store.IntelStore`:

* ``applied(tool, set_sha256)`` — per gate kind (``proxy.block``, ``proxy.tighten``,
  ``firewall.egress_block``, ``ips.deploy_rule``) the members *this sync added* and has
  not removed since. A sync sends a tool only ``validated - applied`` (so an unchanged
  feed costs no tool call), and age-out only ever removes what the sync itself added
  (a block somebody else made stays).
* ``commits(change_id, tool, set_sha256, sign)`` — how ``applied`` got there, one row per
  gated change. A change rolled back later (``handrail rollback``, saga) is noticed at
  the next sync through the ledger and its effect on ``applied`` undone.
* ``age(tracked_sha256, left_sha256)`` — the age-out clock, keyed by indicator: the
  tracked set is the union of everything applied, and ``left`` is a float64 array aligned
  with the set's canonical entry order holding when each entry was first seen missing
  from every feed (NaN while some feed still names it). Entries whose ``left`` is older
  than the grace period are due for unblocking. Only entries whose presence changed are
  touched, so an hourly sync with unchanged feeds rewrites nothing.
* ``feeds(name, sha256)`` — each feed's last good content, used when the feed server is
  unreachable (an outage must not look like every indicator leaving the feed).
* ``sids(n, entry)`` — the IPS rule id of each indicator: ``sid_base + n``, stable for ever.

Time is always passed in (the workflow's ``workflow.now()``), never read from the clock,
so time-skipping tests and replays see the same ages.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from handrail.intel.consensus import Coverage, additions
from handrail.intel.sets import IndicatorSet, unique_v4, unique_v6
from handrail.intel.store import IntelStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS applied (tool TEXT PRIMARY KEY, set_sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commits (
    change_id TEXT PRIMARY KEY, tool TEXT NOT NULL, set_sha256 TEXT NOT NULL,
    sign INTEGER NOT NULL, reverted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS age (
    id INTEGER PRIMARY KEY CHECK (id = 1), tracked_sha256 TEXT NOT NULL, left_sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feeds (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sids (n INTEGER PRIMARY KEY AUTOINCREMENT, entry TEXT NOT NULL UNIQUE);
"""

TOOLS = ("proxy.block", "proxy.tighten", "firewall.egress_block", "ips.deploy_rule")
OTHERS = "#others"
ROLLED_BACK = "#rolled-back"
_OCT = [str(i) for i in range(256)]


# set algebra on exact entries ---------------------------------------------------------
def union(*sets: IndicatorSet) -> IndicatorSet:
    if not sets:
        return IndicatorSet.empty()
    s4, e4 = unique_v4(np.concatenate([s.v4_start for s in sets]),
                       np.concatenate([s.v4_end for s in sets]))
    s6, e6 = unique_v6(p for s in sets for p in zip(s.v6_start.tolist(), s.v6_end.tolist(), strict=True))
    return IndicatorSet(s4, e4, s6, e6, tuple(sorted({d for s in sets for d in s.domains})),
                        tuple(sorted({u for s in sets for u in s.urls})))


def difference(a: IndicatorSet, b: IndicatorSet) -> IndicatorSet:
    """Entries of ``a`` that ``b`` does not have (exact entries)."""
    return additions(b, a)


def intersection(a: IndicatorSet, b: IndicatorSet) -> IndicatorSet:
    return difference(a, difference(a, b))


def only_ips(s: IndicatorSet) -> IndicatorSet:
    return IndicatorSet(s.v4_start, s.v4_end, s.v6_start, s.v6_end)


def _v4_text(start: np.ndarray, end: np.ndarray) -> list[str]:
    o = _OCT
    out = []
    for a, b in zip(start.tolist(), end.tolist(), strict=True):
        t = f"{o[a >> 24]}.{o[(a >> 16) & 255]}.{o[(a >> 8) & 255]}.{o[a & 255]}"
        if a != b:
            size = b - a + 1
            if size & (size - 1) == 0 and a % size == 0:
                t += f"/{33 - size.bit_length()}"
            else:
                t += "-" + f"{o[b >> 24]}.{o[(b >> 16) & 255]}.{o[(b >> 8) & 255]}.{o[b & 255]}"
        out.append(t)
    return out


def entries_text(s: IndicatorSet) -> list[str]:
    """Every entry as text, in canonical order (v4, v6, domains, urls) — fast for IPv4."""
    from handrail.intel.sets import interval_text

    return (_v4_text(s.v4_start, s.v4_end)
            + [interval_text(6, int(a), int(b)) for a, b in zip(s.v6_start, s.v6_end, strict=True)]
            + list(s.domains) + list(s.urls))


def subset_by_text(s: IndicatorSet, texts: Iterable[str], values: Sequence[str] | None = None
                   ) -> IndicatorSet:
    """The entries of ``s`` whose text (see :func:`entries_text`) is in ``texts``."""
    wanted = set(texts)
    values = entries_text(s) if values is None else values
    mask = np.fromiter((v in wanted for v in values), dtype=bool, count=len(values))
    n4, n6, nd = s.ipv4, s.ipv6, len(s.domains)
    return s.select(mask[:n4], mask[n4:n4 + n6], mask[n4 + n6:n4 + n6 + nd].tolist(),
                    mask[n4 + n6 + nd:].tolist())


def _positions(old: IndicatorSet, new: IndicatorSet) -> np.ndarray:
    """For each entry of ``new`` (canonical order), its index in ``old``, or -1."""
    k_old = (old.v4_start.astype(np.uint64) << np.uint64(32)) | old.v4_end.astype(np.uint64)
    k_new = (new.v4_start.astype(np.uint64) << np.uint64(32)) | new.v4_end.astype(np.uint64)
    j = np.searchsorted(k_old, k_new)
    jj = np.minimum(j, max(k_old.size - 1, 0))
    hit = (j < k_old.size) & (k_old[jj] == k_new) if k_old.size else np.zeros(k_new.size, bool)
    p4 = np.where(hit, j, -1)
    base = old.ipv4
    idx6 = {p: base + i for i, p in enumerate(zip(old.v6_start.tolist(), old.v6_end.tolist(), strict=True))}
    p6 = [idx6.get(p, -1) for p in zip(new.v6_start.tolist(), new.v6_end.tolist(), strict=True)]
    base += old.ipv6
    idxd = {d: base + i for i, d in enumerate(old.domains)}
    base += len(old.domains)
    idxu = {u: base + i for i, u in enumerate(old.urls)}
    rest = p6 + [idxd.get(d, -1) for d in new.domains] + [idxu.get(u, -1) for u in new.urls]
    return np.concatenate([p4.astype(np.int64), np.asarray(rest, dtype=np.int64)])


def _split_mask(s: IndicatorSet, mask: np.ndarray) -> IndicatorSet:
    n4, n6, nd = s.ipv4, s.ipv6, len(s.domains)
    return s.select(mask[:n4], mask[n4:n4 + n6], mask[n4 + n6:n4 + n6 + nd].tolist(),
                    mask[n4 + n6 + nd:].tolist())


def _named_mask(coverage: Coverage, s: IndicatorSet) -> np.ndarray:
    m4, m6, md, mu = coverage.names(s)
    return np.concatenate([m4, m6, np.asarray(md, bool), np.asarray(mu, bool)]).astype(bool)


class _SqliteTx:
    """Statements inside one SQLite transaction (or one autocommit statement)."""

    def __init__(self, db: sqlite3.Connection, prefix: str) -> None:
        self.db, self.prefix = db, prefix

    def q(self, sql: str, args: Sequence = ()) -> list:
        return self.db.execute(sql.format(p=self.prefix), tuple(args)).fetchall()

    def many(self, sql: str, rows: Iterable[Sequence]) -> None:
        self.db.executemany(sql.format(p=self.prefix), rows)


class IntelState:
    """The sync's memory between runs (see the module docstring). Thread-safe.

    SQLite under one ``HANDRAIL_HOME`` here; :class:`~handrail.intel.state_pg.PostgresIntelState`
    keeps the same rows in PostgreSQL for several workers (open either with
    :func:`handrail.intel.backends.open_state`). The SQL below is written once for both: table names carry a
    ``{p}`` prefix and every change to the rows happens inside :meth:`_tx`, which on
    PostgreSQL also takes a lock every worker shares.
    """

    PREFIX = ""

    def __init__(self, path: Path | str, store: IntelStore) -> None:
        self.path = Path(path)
        self.store = store
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # the seam between the two backends ------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[_SqliteTx]:
        """One transaction, serialised with every other change to the sync's state."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(self.db, self.PREFIX)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _q(self, sql: str, args: Sequence = ()) -> list:
        """One statement on its own (autocommit). A read does not wait for a transaction in
        progress (an age-out over a large set may hold one for seconds while a phishing verdict
        wants the applied sets); a write does, so it never lands inside somebody else's."""
        if sql.lstrip().upper().startswith("SELECT"):
            return _SqliteTx(self.db, self.PREFIX).q(sql, args)
        with self._lock:
            return _SqliteTx(self.db, self.PREFIX).q(sql, args)

    def _allocate_sids(self, tx, entries: Sequence[str]) -> None:
        tx.many("INSERT OR IGNORE INTO {p}sids(entry) VALUES (?)", ((e,) for e in entries))

    # blobs ------------------------------------------------------------------------
    def _put_times(self, times: np.ndarray) -> str:
        return self.store.put_blob(np.ascontiguousarray(times, dtype="<f8").tobytes(), "f64")

    def _get_times(self, sha: str) -> np.ndarray:
        return np.frombuffer(self.store.get_blob(sha, "f64"), dtype="<f8").copy()

    # applied sets -------------------------------------------------------------------
    def applied_shas(self) -> list[tuple[str, str]]:
        """(tool, set sha256) of every applied set (what the phishing verdicts read)."""
        return [tuple(r) for r in self._q("SELECT tool, set_sha256 FROM {p}applied ORDER BY tool")]

    def applied(self, tool: str, tx=None) -> IndicatorSet:
        rows = (tx.q if tx else self._q)("SELECT set_sha256 FROM {p}applied WHERE tool=?", (tool,))
        return self.store.get_set(rows[0][0]) if rows else IndicatorSet.empty()

    def _set_applied(self, tool: str, s: IndicatorSet, tx=None) -> str:
        sha = self.store.put_set(s)
        (tx.q if tx else self._q)(
            "INSERT INTO {p}applied(tool, set_sha256) VALUES (?, ?)"
            " ON CONFLICT (tool) DO UPDATE SET set_sha256 = excluded.set_sha256", (tool, sha))
        return sha

    def others(self, tool: str, tx=None) -> IndicatorSet:
        """Entries a batch add found already in the wanted state (somebody else's blocks):
        not ours to remove, and not worth asking the tool about again while a feed names
        them (:meth:`prune_others` forgets those no feed names any more)."""
        return self.applied(tool + OTHERS, tx)

    def commit(self, change_id: str, tool: str, set_sha256: str, sign: int,
               others_sha256: str | None = None) -> bool:
        """Record that gated change ``change_id`` added (+1) or removed (-1) these members
        on ``tool`` (and, for an add, which members it found present already).
        Idempotent per change id; False when it was already recorded."""
        with self._tx() as tx:
            if tx.q("SELECT 1 FROM {p}commits WHERE change_id=?", (change_id,)):
                return False
            members = self.store.get_set(set_sha256)
            current = self.applied(tool, tx)
            new = union(current, members) if sign > 0 else difference(current, members)
            self._set_applied(tool, new, tx)
            if others_sha256:
                present = self.store.get_set(others_sha256)
                if len(present):
                    self._set_applied(tool + OTHERS, union(self.others(tool, tx), present), tx)
            tx.q("INSERT INTO {p}commits(change_id, tool, set_sha256, sign) VALUES (?, ?, ?, ?)",
                 (change_id, tool, set_sha256, sign))
            return True

    def rolled_back(self, tool: str, tx=None) -> IndicatorSet:
        """Entries a person took back with `handrail rollback` (of a sync or of its batch): the
        sync does not add them again on its own while a feed still names them (a rollback is a
        decision, not a glitch to repair an hour later); :meth:`prune_others` forgets those no
        feed names any more, and :meth:`forget_rolled_back` all of them."""
        return self.applied(tool + ROLLED_BACK, tx)

    def forget_rolled_back(self) -> int:
        """Let the sync add again what persons rolled back (``[settings.intel] readd_rolled_back``)."""
        forgotten = 0
        with self._tx() as tx:
            for tool in TOOLS:
                kept = self.rolled_back(tool, tx)
                if len(kept):
                    forgotten += len(kept)
                    self._set_applied(tool + ROLLED_BACK, IndicatorSet.empty(), tx)
        return forgotten

    def prune_others(self, present: Sequence[IndicatorSet]) -> None:
        """Forget the others' entries, and the rolled-back ones, that no feed names any more."""
        for tool in TOOLS:
            for key in (tool + OTHERS, tool + ROLLED_BACK):
                with self._tx() as tx:
                    others = self.applied(key, tx)
                    if not len(others):
                        continue
                    named = np.zeros(len(others), dtype=bool)
                    for s in present:
                        if len(s):
                            named |= _named_mask(Coverage(s), others)
                    if not named.all():
                        self._set_applied(key, _split_mask(others, named), tx)

    def reconcile(self, is_reverted, by_person=None) -> int:
        """Undo, in ``applied``, the commits whose change has since been rolled back.

        ``is_reverted(change_id) -> bool`` asks the ledger. Returns how many were undone.
        ``by_person(change_id) -> bool``: the revert was a person's rollback (not compensation
        or expiry); what such a revert took back of an add is remembered (:meth:`rolled_back`).
        """
        undone = 0
        rows = self._q("SELECT change_id FROM {p}commits WHERE reverted=0 ORDER BY change_id")
        for (change_id,) in rows:
            if not is_reverted(change_id):
                continue
            person = by_person is not None and by_person(change_id)
            with self._tx() as tx:
                row = tx.q("SELECT tool, set_sha256, sign FROM {p}commits"
                           " WHERE change_id=? AND reverted=0", (change_id,))
                if not row:
                    continue  # another worker undid it meanwhile
                tool, sha, sign = row[0]
                members = self.store.get_set(sha)
                current = self.applied(tool, tx)
                new = difference(current, members) if sign > 0 else union(current, members)
                self._set_applied(tool, new, tx)
                if sign > 0 and person:
                    self._set_applied(tool + ROLLED_BACK, union(self.rolled_back(tool, tx), members), tx)
                tx.q("UPDATE {p}commits SET reverted=1 WHERE change_id=?", (change_id,))
            undone += 1
        return undone

    # feeds' last good content ---------------------------------------------------------
    def last_feed(self, name: str) -> str | None:
        rows = self._q("SELECT sha256 FROM {p}feeds WHERE name=?", (name,))
        return rows[0][0] if rows else None

    def remember_feed(self, name: str, sha: str) -> None:
        self._q("INSERT INTO {p}feeds(name, sha256) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256", (name, sha))

    # age-out --------------------------------------------------------------------------
    def age(self, present: Sequence[IndicatorSet], now: float, grace_s: float
            ) -> tuple[IndicatorSet, dict[str, int]]:
        """Update the age-out clock and return the entries due for unblocking.

        ``present``: the current (cleaned) feed sets; an applied entry still named by one
        of them (exactly, or inside one of its networks) is present. Returns (due, counts).
        """
        with self._tx() as tx:
            tracked = union(*(self.applied(t, tx) for t in TOOLS))
            rows = tx.q("SELECT tracked_sha256, left_sha256 FROM {p}age WHERE id=1")
            if rows:
                old, old_left = self.store.get_set(rows[0][0]), self._get_times(rows[0][1])
                pos = _positions(old, tracked)
                left = np.where(pos >= 0, old_left[np.maximum(pos, 0)] if old_left.size else np.nan,
                                np.nan)
            else:
                left = np.full(len(tracked), np.nan)
            named = np.zeros(len(tracked), dtype=bool)
            for s in present:
                if len(s):
                    named |= _named_mask(Coverage(s), tracked)
            gone_now = ~named & np.isnan(left)
            left[named] = np.nan
            left[gone_now] = now
            due_mask = ~np.isnan(left) & (now - np.nan_to_num(left, nan=now) > grace_s)
            tx.q("INSERT INTO {p}age(id, tracked_sha256, left_sha256) VALUES (1, ?, ?)"
                 " ON CONFLICT (id) DO UPDATE SET tracked_sha256 = excluded.tracked_sha256,"
                 " left_sha256 = excluded.left_sha256",
                 (self.store.put_set(tracked), self._put_times(left)))
        due = _split_mask(tracked, due_mask)
        counts = {"tracked": len(tracked), "absent": int((~np.isnan(left)).sum()),
                  "newly_absent": int(gone_now.sum()), "due": len(due)}
        return due, counts

    # IPS sids -------------------------------------------------------------------------
    def sids(self, entries: Sequence[str], base: int, allocate: bool = True) -> list[int | None]:
        """The stable sid of each entry (``base + n``); allocated on first use."""
        found: dict[str, int] = {}
        with self._tx() as tx:
            if allocate and entries:
                self._allocate_sids(tx, entries)
            for i in range(0, len(entries), 900):
                chunk = list(entries[i:i + 900])
                marks = ",".join("?" * len(chunk))
                for entry, n in tx.q(f"SELECT entry, n FROM {{p}}sids WHERE entry IN ({marks})", chunk):
                    found[entry] = base + n
        return [found.get(e) for e in entries]
