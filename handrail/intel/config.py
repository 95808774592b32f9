"""The intel sync's configuration: the ``[settings.intel]`` table of ``policy.toml``.

Which feeds to read (by their name on the feed server), in which format, how much each
one's word weighs in the consensus, the CSV column mapping, the consensus threshold, the
age-out grace period and the batch sizes. Validated with pydantic so a typo is one
sentence at ``handrail policy check``/sync time, never a surprise halfway through a run::

    [settings.intel]
    threshold = 2.0          # summed feed weight that makes an indicator validated
    grace = "7d"             # unblock what has left every feed for longer than this
    hold_shrink = 0.5        # a feed suddenly keeping less than half its entries: keep its last good content
    feeds = [
      { name = "lab-c2", format = "ipset", weight = 1.0 },
      { name = "lab-phish-csv", format = "csv", columns = { indicator = "indicator", type = "type" } },
    ]

The protected networks are the policy's own ``[[protected_networks]]``: the intel
guardrails and the gate's ``never_block`` read the same list.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from handrail.gate.policy import Policy, parse_duration
from handrail.intel.models import FeedSpec

DEFAULT_GRACE_S = 7 * 86400.0


class IntelConfigError(ValueError):
    """``[settings.intel]`` is unusable; the message is one sentence."""


class IntelSettings(BaseModel):
    """``[settings.intel]``, validated. Durations accept ``90s``/``15m``/``4h``/``7d``."""

    model_config = ConfigDict(extra="forbid")

    feeds: list[FeedSpec] = Field(default_factory=list)
    threshold: float = Field(default=2.0, gt=0)
    grace: str | float = "7d"
    # members per gated change (one change = one ledger record); bigger updates are split
    change_max_members: int = Field(default=200_000, ge=1)
    # a kind with more parts than this in one sync runs them in a child workflow
    child_after_parts: int = Field(default=8, ge=1)
    # values per call to a tool's bulk API (each with its own idempotency key)
    tool_batch: int = Field(default=5_000, ge=1, le=10_000)
    # reject examples kept in the run's status per feed (the full report is stored)
    examples_per_feed: int = Field(default=5, ge=0, le=50)
    # IPS rules: `drop` or `alert`; sids are allocated from this base upward
    ips_action: str = "drop"
    ips_sid_base: int = Field(default=1_100_000_000, ge=1_000_000, le=3_000_000_000)
    alert_priority_faulty: str = "P1"
    # a fetched feed keeping fewer than this fraction of the entries its last good content
    # kept (a captive portal, an error page, a truncated file) is not used: its last good
    # content is, and the administrators are alerted each sync until it recovers (0: never hold)
    hold_shrink: float = Field(default=0.5, ge=0, lt=1)
    hold_shrink_min: int = Field(default=10, ge=1)  # only feeds whose last good content kept this many
    # what a person rolled back (`handrail rollback` of a sync) is not added again while the feeds
    # still name it; true for one sync adds it back (the rollback is then undone by the sync)
    readd_rolled_back: bool = False
    alert_priority_suspect: str = "P3"

    @field_validator("grace")
    @classmethod
    def _duration(cls, value):
        parse_duration(value)
        return value

    @field_validator("ips_action")
    @classmethod
    def _action(cls, value: str) -> str:
        if value not in ("drop", "alert", "reject"):
            raise ValueError("ips_action must be drop, alert or reject")
        return value

    @model_validator(mode="after")
    def _unique_feeds(self) -> IntelSettings:
        names = [f.name for f in self.feeds]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feed {dupes[0]!r} is configured twice")
        for f in self.feeds:
            if f.columns is not None and f.format != "csv":
                raise ValueError(f"feed {f.name!r}: columns only apply to csv feeds")
        return self

    @property
    def grace_s(self) -> float:
        return parse_duration(self.grace)

    def weights(self) -> dict[str, float]:
        return {f.name: f.weight for f in self.feeds}


def intel_settings(policy: Policy) -> IntelSettings:
    """The validated ``[settings.intel]`` of a loaded policy (defaults when absent)."""
    return parse_intel_settings(policy.settings.get("intel") or {})


def parse_intel_settings(raw: dict[str, Any]) -> IntelSettings:
    try:
        return IntelSettings.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise IntelConfigError(
            f"settings.intel{'.' + where if where else ''} is invalid: {msg}.") from None
