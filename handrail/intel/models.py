"""Pydantic models that cross the activity boundary: hashes and counts, never contents."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

FeedFormat = Literal["ipset", "netset", "csv", "stix"]


class FeedSpec(BaseModel):
    """How to read one feed, and how much its word counts in the consensus."""

    name: str
    format: FeedFormat = "ipset"
    weight: float = Field(default=1.0, ge=0.0)
    columns: dict[str, str] | None = None  # csv only: {"indicator": "ip", "type": "kind"}


class RejectExample(BaseModel):
    """One rejected input item. ``line`` for text formats, ``ref`` (indicator id) for STIX."""

    line: int | None = None
    ref: str | None = None
    text: str
    reason: str


class FeedParse(BaseModel):
    """What normalising one feed produced. Counts are exact; examples are capped per reason."""

    feed: str
    format: FeedFormat
    content_sha256: str
    parser_version: str
    accepted: int = 0          # items (lines / pattern comparisons) that normalised
    rejected: int = 0          # items that did not, each with a reason
    unsupported: int = 0       # well-formed items of types Handrail does not block on
    rejects_by_reason: dict[str, int] = Field(default_factory=dict)
    unsupported_by_type: dict[str, int] = Field(default_factory=dict)
    examples: list[RejectExample] = Field(default_factory=list)
    ipv4: int = 0              # distinct entries after normalisation (addresses + networks)
    ipv4_networks: int = 0
    ipv6: int = 0
    ipv6_networks: int = 0
    domains: int = 0
    urls: int = 0
    duplicates: int = 0        # accepted items that repeated an earlier entry of the same feed
    set_sha256: str | None = None  # the normalized set in the store, once stored
    cached: bool = False       # True when the store already held this content's result


class GuardrailDrop(BaseModel):
    entry: str
    reason: str


class GuardrailReport(BaseModel):
    """What the never-block guardrails removed from one feed, and why."""

    feed: str
    kept: int
    dropped: int
    dropped_by_reason: dict[str, int] = Field(default_factory=dict)
    protected_hits: list[GuardrailDrop] = Field(default_factory=list)  # capped, see counts
    examples: list[GuardrailDrop] = Field(default_factory=list)  # special-use drops, capped
    faulty: bool = False       # the feed named a protected network: do not trust it blindly
    alert: str | None = None   # one sentence for the analyst when ``faulty``
    clean_set_sha256: str | None = None


class SetCounts(BaseModel):
    total: int = 0
    ipv4: int = 0
    ipv4_networks: int = 0
    ipv6: int = 0
    ipv6_networks: int = 0
    domains: int = 0
    urls: int = 0


class ConsensusResult(BaseModel):
    """Validated (named by enough weight) and suspect entries, stored by hash."""

    threshold: float
    weights: dict[str, float]
    validated: SetCounts
    suspect: SetCounts
    validated_sha256: str | None = None
    suspect_sha256: str | None = None


class VolumeVerdict(BaseModel):
    verdict: Literal["allow", "hold"]
    reason: str
    additions: int
    threshold: int
    top_feeds: list[tuple[str, int]] = Field(default_factory=list)


class SyncPassResult(BaseModel):
    """One sync pass: per-feed parse and guardrail reports, then the consensus."""

    feeds: list[FeedParse]
    guardrails: list[GuardrailReport]
    consensus: ConsensusResult

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.feeds)

    @property
    def dropped(self) -> int:
        return sum(g.dropped for g in self.guardrails)
