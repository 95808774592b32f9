"""Triggers a poller builds from what a tool listed: the valid ones start runs, the rest are named."""

from __future__ import annotations

from pydantic import ValidationError

from handrail.gate.limits import explain
from handrail.ops.log import get_logger


def valid_only(make, items) -> list:
    """``make(item)`` for each item, skipping (and logging) those a trigger refuses: one
    malformed record in a tool must not stop a poller from starting every other run."""
    out = []
    for item in items:
        try:
            out.append(make(item))
        except ValidationError as exc:
            get_logger().warning("trigger skipped: over its limits", error=explain(exc))
    return out
