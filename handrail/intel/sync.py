"""The intel sync's boundary models and its planning step (pure apart from the store).

The workflow (``workflows/intel_sync.py``) only ever holds what is defined here: feed
names, hashes, counts, a handful of examples — never indicator lists. Sizes are capped
(``examples_per_feed``, ``MAX_HITS_SHOWN``) so the history stays small whatever the feeds
hold; the complete per-feed reports are stored by hash (``report_sha256``).

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
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from handrail.gate.limits import Principal, Reason
from handrail.intel.consensus import attribute, find_consensus
from handrail.intel.models import ConsensusResult, FeedFormat, FeedSpec, RejectExample
from handrail.intel.sets import IndicatorSet
from handrail.intel.state import IntelState, difference, intersection, only_ips
from handrail.intel.store import IntelStore

MAX_HITS_SHOWN = 20

# the kind that adds -> the kind that removes (age-out, rollback)
REMOVE_KIND = {
    "proxy.block": "proxy.unblock",
    "proxy.tighten": "proxy.relax",
    "ips.deploy_rule": "ips.remove_rule",
    "firewall.egress_block": "firewall.egress_unblock",
}
ADD_ORDER = ("proxy.block", "ips.deploy_rule", "firewall.egress_block")


class IntelSyncTrigger(BaseModel):
    requested_by: Principal = "schedule"
    reason: Reason = "scheduled threat-intel sync"


def scheduled_trigger() -> IntelSyncTrigger:
    """The argument the Temporal Schedule starts each sync with."""
    return IntelSyncTrigger()


class SyncConfig(BaseModel):
    """The policy's ``[settings.intel]`` as one run uses it (a snapshot in the history)."""

    feeds: list[FeedSpec]
    threshold: float
    grace_s: float
    change_max_members: int
    tool_batch: int
    examples_per_feed: int
    ips_action: str
    ips_sid_base: int
    alert_priority_faulty: str
    alert_priority_suspect: str
    child_after_parts: int = 8
    protected: list[tuple[str, str]] = Field(default_factory=list)  # (name, cidr)


class FeedRequest(BaseModel):
    run_id: str
    spec: FeedSpec
    config: SyncConfig


class FeedOutcome(BaseModel):
    """One feed this sync: where its content came from, the parse and guardrail counts."""

    feed: str
    format: FeedFormat
    source: Literal["fetched", "last-good", "missing"]
    error: str | None = None
    sha256: str | None = None
    size: int = 0
    cached: bool = False
    accepted: int = 0
    rejected: int = 0
    unsupported: int = 0
    rejects_by_reason: dict[str, int] = Field(default_factory=dict)
    examples: list[RejectExample] = Field(default_factory=list)
    entries: int = 0
    kept: int = 0
    dropped: int = 0
    dropped_by_reason: dict[str, int] = Field(default_factory=dict)
    faulty: bool = False
    alert: str | None = None
    protected_hits: list[str] = Field(default_factory=list)  # capped; see dropped_by_reason
    clean_set_sha256: str | None = None
    report_sha256: str | None = None  # the full parse + guardrail reports, stored as JSON

    def summary(self) -> dict:
        return {
            "source": self.source, "error": self.error, "sha256": self.sha256, "cached": self.cached,
            "accepted": self.accepted, "rejected": self.rejected, "unsupported": self.unsupported,
            "rejects_by_reason": self.rejects_by_reason, "entries": self.entries,
            "kept": self.kept, "dropped": self.dropped, "dropped_by_reason": self.dropped_by_reason,
            "faulty": self.faulty, "report_sha256": self.report_sha256,
        }


class PlanRequest(BaseModel):
    run_id: str
    now: float  # the workflow's clock (epoch seconds): the age-out's "now"
    sets: dict[str, str]  # feed -> clean set sha256
    config: SyncConfig


class ToolWork(BaseModel):
    """One gated batch change to make: kind, set reference, size, who named it."""

    kind: str
    set_sha256: str
    count: int
    feeds: str = ""
    part: int = 1
    parts: int = 1
    applied_key: str  # the add kind whose ``applied`` set this change updates


class SyncPlan(BaseModel):
    consensus: ConsensusResult
    adds: list[ToolWork] = Field(default_factory=list)
    tighten: list[ToolWork] = Field(default_factory=list)
    removals: list[ToolWork] = Field(default_factory=list)
    age: dict[str, int] = Field(default_factory=dict)
    reconciled: int = 0
    suspect_feeds: str = ""


class IntelApplyRequest(BaseModel):
    """A child run's work: one kind's parts (see ``IntelSync._group``)."""

    parent_run_id: str
    requested_by: str
    kind: str
    works: list[ToolWork]
    config: SyncConfig
    comment: str
    sign: int
    stop_on_deny: bool = False


class IntelApplyResult(BaseModel):
    """What a child run reports back to the sync: its outcome and counts, no steps."""

    state: str
    applied: dict[str, dict[str, int]] = Field(default_factory=dict)
    denied: str | None = None
    error: str | None = None


class CommitRequest(BaseModel):
    change_id: str
    applied_key: str
    sign: int  # +1 added, -1 removed


class CommitResult(BaseModel):
    committed: bool
    count: int = 0


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


def plan_sync(store: IntelStore, state: IntelState, req: PlanRequest, is_reverted) -> SyncPlan:
    cfg = req.config
    feeds = {name: store.get_set(sha) for name, sha in req.sets.items()}
    reconciled = state.reconcile(is_reverted)
    c = find_consensus(feeds, {f.name: f.weight for f in cfg.feeds}, cfg.threshold)
    consensus = c.result(store.put_set(c.validated), store.put_set(c.suspect))
    size = cfg.change_max_members
    adds: list[ToolWork] = []
    state.prune_others(list(feeds.values()))
    for kind in ADD_ORDER:
        wanted = only_ips(c.validated) if kind == "firewall.egress_block" else c.validated
        todo = difference(difference(wanted, state.applied(kind)), state.others(kind))
        adds += _work(store, kind, todo, size, feeds, kind)
    new_suspects = difference(difference(c.suspect, state.applied("proxy.tighten")),
                              state.others("proxy.tighten"))
    tighten = _work(store, "proxy.tighten", new_suspects, size, feeds, "proxy.tighten")
    due, age = state.age(list(feeds.values()), req.now, cfg.grace_s)
    removals: list[ToolWork] = []
    if len(due):
        for add_kind in ("proxy.block", "proxy.tighten", "ips.deploy_rule", "firewall.egress_block"):
            mine = intersection(due, state.applied(add_kind))
            removals += _work(store, REMOVE_KIND[add_kind], mine, size, {}, add_kind)
    return SyncPlan(consensus=consensus, adds=adds, tighten=tighten, removals=removals, age=age,
                    reconciled=reconciled, suspect_feeds=top_feeds(new_suspects, feeds))


def store_json(store: IntelStore, value: dict) -> str:
    import hashlib

    data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    sha = hashlib.sha256(data).hexdigest()
    store._write(store.root / f"{sha}.json", data)
    return sha
