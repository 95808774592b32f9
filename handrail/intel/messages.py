"""The intel sync's boundary models: everything the workflow (``workflows/intel_sync.py``)
holds and every activity takes or returns — feed names, hashes, counts, a handful of
examples, never indicator lists. Sizes are capped (``examples_per_feed``,
``MAX_HITS_SHOWN``) so the history stays small whatever the feeds hold; the complete
per-feed reports are stored by hash (``report_sha256``). Free of I/O, so workflow code
may import it; the planning that reads the store is :mod:`handrail.intel.planning`.
"""


from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from handrail.gate.limits import Principal, Reason
from handrail.intel.config import IntelSettings
from handrail.intel.models import ConsensusResult, FeedFormat, FeedSpec, RejectExample

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


class SyncConfig(IntelSettings):
    """The policy's ``[settings.intel]`` as one run uses it (a snapshot in the history),
    with the protected networks and allowlisted names the run's guardrails check against."""

    protected: list[tuple[str, str]] = Field(default_factory=list)  # (name, cidr)
    # names the never_touch guardrails of the kinds the sync adds to refuse (REMOVE_KIND's keys)
    allowlist: list[str] = Field(default_factory=list)


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
    held: bool = False  # the fetched content shrank past hold_shrink: the last good content is used
    protected_hits: list[str] = Field(default_factory=list)  # capped; see dropped_by_reason
    # names left unblocked because they are popular sites (or no top-sites list could be read)
    popular_dropped: int = 0
    popular_hits: list[str] = Field(default_factory=list)  # capped: "github.com (github.com is rank 34)"
    popular_reason: str | None = None  # the one sentence saying why
    popular_unranked: bool = False  # no top-sites list could be read: every name was dropped
    clean_set_sha256: str | None = None
    report_sha256: str | None = None  # the full parse + guardrail reports, stored as JSON

    def summary(self) -> dict:
        return {
            "source": self.source, "error": self.error, "sha256": self.sha256, "cached": self.cached,
            "accepted": self.accepted, "rejected": self.rejected, "unsupported": self.unsupported,
            "rejects_by_reason": self.rejects_by_reason, "entries": self.entries,
            "kept": self.kept, "dropped": self.dropped, "dropped_by_reason": self.dropped_by_reason,
            "faulty": self.faulty, "report_sha256": self.report_sha256,
            **({"held": True} if self.held else {}),
            **({"popular_dropped": self.popular_dropped} if self.popular_dropped else {}),
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
    # per add kind: entries a person rolled back that the feeds still name, left alone this sync
    not_readded: dict[str, int] = Field(default_factory=dict)


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
