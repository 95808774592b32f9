"""Timestamps: ISO 8601 UTC, second precision, so records compare and hash predictably."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# The seeded estate lives at a fixed moment so its state hash is the same on every machine.
SEED_EPOCH = datetime(2025, 3, 3, 8, 0, 0, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def seed_time(hours: float = 0.0) -> str:
    """A timestamp `hours` before the seed epoch (positive = in the past)."""
    return iso(SEED_EPOCH - timedelta(hours=hours))
