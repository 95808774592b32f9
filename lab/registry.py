"""The tools the lab plays, and what the estate is made of.

Each tool is one module with `TOOL` (its name in `/_lab/state`), `COLLECTIONS` (the
collections that make up its state), `router` (its REST API) and `seed(world, store)`
(its initial documents). Adding a tool is one module plus one line here.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from lab import (
    alerts,
    cases,
    cmdb,
    dlp,
    dns,
    edr,
    firewall,
    iam,
    intel,
    ips,
    mailbox,
    nac,
    proxy,
    siem,
    takedown,
    training,
)
from lab.seed import build_world
from lab.store import Store, canonical_json

TOOLS: tuple[ModuleType, ...] = (
    mailbox, dns, edr, siem, firewall, ips, proxy, dlp, cmdb, iam, nac, intel, cases, alerts,
    training, takedown,
)


def seed_all(store: Store) -> None:
    """Wipe everything (estate, calls, idempotency keys, faults) and load the seed."""
    world = build_world()
    with store.batch():
        store.wipe()
        rows = []
        for tool in TOOLS:
            docs = tool.seed(world, store)
            for coll in tool.COLLECTIONS:
                for key, doc in docs.get(coll, {}).items():
                    rows.append((tool.TOOL, coll, key, doc))
        store.put_many(rows)
        store.mark_seeded()


_cache: dict[int, tuple[int, dict[str, Any], str]] = {}


def estate(store: Store) -> tuple[dict[str, Any], str]:
    """The state document of every tool and its sha256 (cached until the next write)."""
    import hashlib

    hit = _cache.get(id(store))
    if hit and hit[0] == store.version:
        return hit[1], hit[2]
    tools = {t.TOOL: store.snapshot(t.TOOL, t.COLLECTIONS) for t in TOOLS}
    digest = hashlib.sha256(canonical_json(tools).encode()).hexdigest()
    _cache[id(store)] = (store.version, tools, digest)
    return tools, digest


def counts(tools: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {name: {coll: len(docs) for coll, docs in colls.items()}
            for name, colls in tools.items()}
