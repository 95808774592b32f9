"""Which names and addresses the threat-intel sync currently blocks: evidence for a verdict.

The intel sync (`handrail run intel-sync`) records, per tool, the indicator set it has
applied (``HANDRAIL_HOME/intel.db`` points at content-addressed sets in the store). A link
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


def named_by_intel(intel_db: Path, store) -> frozenset[str]:
    """Hosts, domains and IPs the applied intel sets name (empty when there is no sync yet).

    ``store``: the installation's :class:`~handrail.intel.store.IntelStore` (files or
    PostgreSQL, from ``IntelStore.from_settings``), or the folder of a file store."""
    if not intel_db.is_file():
        return frozenset()
    try:
        db = sqlite3.connect(f"file:{intel_db}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT tool, set_sha256 FROM applied").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return frozenset()  # a sync mid-migration or an old file: no evidence, never an error
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
        except (OSError, ValueError):
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
