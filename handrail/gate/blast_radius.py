"""The blast-radius limits a step is checked against, as numbers the ledger can reserve under.

`rate_limit` (changes of a kind per hour, all runs) and `per_run_limit` (changes of a kind
in one run) are evaluated in the workflow from counts an activity gathered. Counting and
deciding apart would let steps checked at the same instant on different workers all see
"one below the limit" and all pass. So the activity asks the ledger to count *and* reserve
a place in one serialised transaction (`Ledger.check_limits`), with the very limits the
guardrails will apply: a step the ledger did not reserve for is one the guardrail holds.
"""

from __future__ import annotations

from typing import Any

# guardrail type -> (its option, the default the guardrail uses); the same as handrail.gate.guardrails
LIMIT_OPTIONS = {"rate_limit": ("per_hour", 100), "per_run_limit": ("per_run", 20)}


def limit_of(gtype: str, guardrails: list[dict[str, Any]], thresholds: dict[str, float]) -> float | None:
    """The strictest limit of one type among a kind's guardrails (None: no such guardrail).

    As in the guardrail itself: a baseline-derived threshold replaces the static option.
    """
    option, default = LIMIT_OPTIONS[gtype]
    limits = [float(thresholds[gtype]) if gtype in thresholds else float(g.get(option, default))
              for g in guardrails if g.get("type") == gtype]
    return min(limits) if limits else None


def step_limits(guardrails: list[dict[str, Any]], thresholds: dict[str, float]) -> tuple[float | None, float | None]:
    """(per hour, per run) for `Ledger.check_limits`."""
    return limit_of("rate_limit", guardrails, thresholds), limit_of("per_run_limit", guardrails, thresholds)
