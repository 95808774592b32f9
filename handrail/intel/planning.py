"""The intel sync's planning step (pure apart from the store).

Its inputs and outputs are the boundary models of :mod:`handrail.intel.messages`.

:func:`plan_sync` turns the cleaned feed sets into the sync's work, tool by tool:

* consensus over the cleaned sets (weights and threshold from ``[settings.intel]``);
* adds: ``validated - applied[kind]`` for ``proxy.block``, ``ips.deploy_rule`` and
  ``firewall.egress_block`` (addresses and networks only), ``suspect - applied`` for
  ``proxy.tighten``; each split into parts of at most ``change_max_members``;
* age-out: the applied entries no feed has named for longer than the grace period, per
  tool, as the inverse kinds (``proxy.unblock``, ``proxy.relax``, ``ips.remove_rule``,
  ``firewall.egress_unblock``);
* for each part, the feeds naming most of its members (for the hold's reason).
"""

from __future__ import annotations

import json

import numpy as np

from handrail.intel.consensus import attribute, find_consensus
from handrail.intel.messages import ADD_ORDER, REMOVE_KIND, PlanRequest, SyncPlan, ToolWork
from handrail.intel.sets import IndicatorSet
from handrail.intel.state import IntelState, difference, intersection, only_ips
from handrail.intel.store import IntelStore


# planning -------------------------------------------------------------------------------
def _parts(s: IndicatorSet, size: int) -> list[IndicatorSet]:
    n = len(s)
    if n <= size:
        return [s] if n else []
    out = []
    for lo in range(0, n, size):
        mask = np.zeros(n, dtype=bool)
        mask[lo:lo + size] = True
        n4, n6, nd = s.ipv4, s.ipv6, len(s.domains)
        out.append(s.select(mask[:n4], mask[n4:n4 + n6], mask[n4 + n6:n4 + n6 + nd].tolist(),
                            mask[n4 + n6 + nd:].tolist()))
    return out


def top_feeds(entries: IndicatorSet, feeds: dict[str, IndicatorSet], top: int = 3) -> str:
    if not len(entries):
        return ""
    counts = attribute(entries, feeds)
    ranked = sorted(((n, c) for n, c in counts.items() if c), key=lambda kv: (-kv[1], kv[0]))[:top]
    return ", ".join(f"{n} ({c})" for n, c in ranked)


def _work(store: IntelStore, kind: str, s: IndicatorSet, size: int, feeds: dict[str, IndicatorSet],
          applied_key: str) -> list[ToolWork]:
    parts = _parts(s, size)
    return [ToolWork(kind=kind, set_sha256=store.put_set(p), count=len(p),
                     feeds=top_feeds(p, feeds), part=i + 1, parts=len(parts),
                     applied_key=applied_key) for i, p in enumerate(parts)]


def plan_sync(store: IntelStore, state: IntelState, req: PlanRequest, is_reverted, by_person=None) -> SyncPlan:
    """``by_person(change_id)``: the ledger's revert of that change was a person's rollback, which
    the sync does not undo on its own (see :meth:`IntelState.rolled_back`)."""
    cfg = req.config
    feeds = {name: store.get_set(sha) for name, sha in req.sets.items()}
    reconciled = state.reconcile(is_reverted, by_person)
    if cfg.readd_rolled_back:
        state.forget_rolled_back()
    c = find_consensus(feeds, {f.name: f.weight for f in cfg.feeds}, cfg.threshold)
    consensus = c.result(store.put_set(c.validated), store.put_set(c.suspect))
    size = cfg.change_max_members
    adds: list[ToolWork] = []
    not_readded: dict[str, int] = {}
    state.prune_others(list(feeds.values()))

    def todo_for(kind: str, wanted: IndicatorSet) -> IndicatorSet:
        todo = difference(difference(wanted, state.applied(kind)), state.others(kind))
        held_back = intersection(todo, state.rolled_back(kind))
        if len(held_back):
            not_readded[kind] = len(held_back)
            todo = difference(todo, held_back)
        return todo

    for kind in ADD_ORDER:
        wanted = only_ips(c.validated) if kind == "firewall.egress_block" else c.validated
        adds += _work(store, kind, todo_for(kind, wanted), size, feeds, kind)
    new_suspects = todo_for("proxy.tighten", c.suspect)
    tighten = _work(store, "proxy.tighten", new_suspects, size, feeds, "proxy.tighten")
    due, age = state.age(list(feeds.values()), req.now, cfg.grace_s)
    removals: list[ToolWork] = []
    if len(due):
        for add_kind in ("proxy.block", "proxy.tighten", "ips.deploy_rule", "firewall.egress_block"):
            mine = intersection(due, state.applied(add_kind))
            removals += _work(store, REMOVE_KIND[add_kind], mine, size, {}, add_kind)
    return SyncPlan(consensus=consensus, adds=adds, tighten=tighten, removals=removals, age=age,
                    reconciled=reconciled, suspect_feeds=top_feeds(new_suspects, feeds), not_readded=not_readded)


def store_json(store: IntelStore, value: dict) -> str:
    return store.put_blob(json.dumps(value, sort_keys=True, separators=(",", ":")).encode(), "json")
