"""Change freezes: windows in which every change holds for a human, whatever its trust mode.

Like a closed change calendar that even auto-approval cannot pass: during a freeze a
`logged` or `guarded` change waits for approval as if a guardrail held it, with the
freeze's reason. The windows live in the policy:

    [[freeze]]                       # dated: a year-end freeze
    reason = "year-end change freeze"
    start = 2026-12-20T00:00:00Z
    end = 2027-01-04T00:00:00Z

    [[freeze]]                       # weekly: every Friday evening (an overnight window may
    reason = "weekend release"       # end the next morning: from "22:00" until "06:00")
    weekly = { days = ["fri"], from = "16:00", until = "23:59" }
    timezone = "Europe/Paris"        # default UTC

The step's activity decides which window is active at the moment it gathers the guardrail
facts and puts its reason in the `GuardrailContext`; the workflow's guardrail evaluation
stays pure (`handrail.gate.guardrails.change_freeze`). Compensation and TTL expiry undo a
run's own changes without the gate, so they are never held by a freeze.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timezone
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: list[str] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _clock(value: str) -> time:
    match = _CLOCK.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a time of day (use HH:MM, e.g. 16:00)")
    return time(int(match.group(1)), int(match.group(2)))


class Weekly(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    days: list[Day] = Field(min_length=1)
    from_: str = Field(alias="from")
    until: str

    @field_validator("from_", "until")
    @classmethod
    def _is_clock(cls, value: str) -> str:
        _clock(value)
        return value

    def active(self, local: datetime) -> bool:
        start, end, now = _clock(self.from_), _clock(self.until), local.time()
        today, yesterday = DAYS[local.weekday()], DAYS[(local.weekday() - 1) % 7]
        if start < end:
            return today in self.days and start <= now < end
        return (today in self.days and now >= start) or (yesterday in self.days and now < end)


class FreezeWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1)
    start: datetime | None = None
    end: datetime | None = None
    weekly: Weekly | None = None
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known time zone (e.g. UTC, Europe/Paris)") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "FreezeWindow":
        dated = self.start is not None or self.end is not None
        if dated and self.weekly is not None:
            raise ValueError("a freeze is either dated (start, end) or weekly, not both")
        if not dated and self.weekly is None:
            raise ValueError("a freeze needs start and end, or weekly = { days, from, until }")
        if dated:
            if self.start is None or self.end is None:
                raise ValueError("a dated freeze needs both start and end")
            self.start, self.end = self._aware(self.start), self._aware(self.end)
            if self.end <= self.start:
                raise ValueError("a freeze must end after it starts")
        return self

    def _aware(self, at: datetime) -> datetime:
        return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo(self.timezone))

    def active(self, now: datetime) -> bool:
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        if self.weekly is not None:
            return self.weekly.active(now.astimezone(ZoneInfo(self.timezone)))
        return self.start <= now < self.end


def active_freeze(windows: list[FreezeWindow], now: datetime) -> str | None:
    """The reason of the first freeze in force at `now`, or None."""
    for window in windows:
        if window.active(now):
            return window.reason
    return None



