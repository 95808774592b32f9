"""Which names and addresses the threat-intel sync currently blocks: evidence for a verdict.

The intel sync (`handrail run intel-sync`) records, per tool, the indicator set it has
applied (``HANDRAIL_HOME/intel.db``, or PostgreSQL, points at content-addressed sets in the store). A link
domain or IP the feeds already name is strong evidence. This module only reads: the
database is opened read-only and a missing one means "the feeds name nothing yet".
Blocking (SQLite, files): call it from a thread.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from handrail.runbooks.phishing.indicators import normalise_host, url_host

TOOLS = ("proxy.block", "firewall.egress_block", "ips.deploy_rule")

_cache: dict[tuple, frozenset[str]] = {}
_lock = threading.Lock()


def _applied_rows(intel_db) -> list[tuple[str, str]]:
    """(tool, set sha256) rows from the sync's state, or none when it cannot be read."""
    if not isinstance(intel_db, Path):  # the installation's IntelState (SQLite or PostgreSQL)
        try:
            return intel_db.applied_shas()
        except Exception:  # a database that is down is no evidence, never a failed verdict
            return []
    if not intel_db.is_file():
        return []
    try:
        db = sqlite3.connect(f"file:{intel_db}?mode=ro", uri=True)
        try:
            return db.execute("SELECT tool, set_sha256 FROM applied").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []  # a sync mid-migration or an old file: no evidence, never an error


def named_by_intel(intel_db, store) -> frozenset[str]:
    """Hosts, domains and IPs the applied intel sets name (empty when there is no sync yet).

    ``intel_db``: the path of a SQLite ``intel.db`` (opened read-only) or the installation's
    :class:`~handrail.intel.state.IntelState`; ``store``: its
    :class:`~handrail.intel.store.IntelStore` (files or PostgreSQL) or a file store's folder."""
    rows = _applied_rows(intel_db)
    if not rows:
        return frozenset()
    key = tuple(sorted(sha for tool, sha in rows if tool in TOOLS))
    with _lock:
        if key in _cache:
            return _cache[key]
    from handrail.intel.state import entries_text
    from handrail.intel.store import IntelStore

    if not isinstance(store, IntelStore):
        store = IntelStore(store)
    names: set[str] = set()
    for sha in key:
        try:
            indicator_set = store.get_set(sha)
        except Exception:  # unreadable or unreachable: no evidence from this set
            continue
        names.update(d for d in (normalise_host(x) for x in indicator_set.domains) if d)
        names.update(h for h in (url_host(u) for u in indicator_set.urls) if h)
        if indicator_set.ipv4 + indicator_set.ipv6 <= 100_000:  # single addresses; ranges stay out
            names.update(t for t in entries_text(indicator_set)[: indicator_set.ipv4 + indicator_set.ipv6]
                         if "/" not in t and "-" not in t)
    result = frozenset(names)
    with _lock:
        _cache.clear()
        _cache[key] = result
    return result
