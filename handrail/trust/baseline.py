"""The baseline: what automation actually did, per action kind, read back from the ledger.

The ledger records every change and every gate decision; this module turns it into the
figures an engineer sets guardrails and trust modes by — how often (changes per hour and
per day), how big (changes per run), how often a human said no, how often a guardrail
held or denied, and how often a change was undone (rollback, expiry, compensation) or
overridden (an automated change an analyst rolled back or reversed).

Everything is SQL aggregation over covering indexes (see the ledger schema; CROSS JOIN
pins the join order where SQLite's planner would otherwise walk every change); Python only
sees bucketed counts (a few thousand hourly buckets per kind), so a million ledger rows
take a second or two. The SQL itself lives with each ledger backend (`SqliteSQL`,
`PostgresSQL`, asked for by name through `ledger.query`), written so that both return the
same rows: tests/test_baseline_backends.py holds them to identical figures.

Definitions (deliberate, and the same everywhere, including derived thresholds):
- A *change* is a row of the `changes` table (applied or unchanged alike): the same thing
  the `rate_limit` guardrail counts, so a threshold derived from it is like for like.
- The *observed window* of a kind runs from UTC midnight of the day of its first change
  (or from `since`, whichever is later) to `now` (exclusive). Every hour and every day in
  it counts, empty ones as zero: quiet nights are part of the normal rate.
- Percentiles are nearest-rank: p95 is the smallest value with at least 95 % of the
  observations at or below it, so every figure is a count that really occurred.
- Approval latency is from `approval.requested` to `approval.decided` (timeouts are
  counted, not timed). Batch size is the number of changes of the kind in one run.
- An *override* is an automated change (mode logged or guarded) that was later rolled
  back (`handrail rollback`), or whose inverse a human-approved run applied to the same
  target before it expired. TTL expiries and saga compensations are not overrides.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from handrail.gate.ledger import Ledger, iso
from handrail.gate.policy import BASELINE_STATS, BaselineSpec

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
STATIC_OPTION = {"rate_limit": ("per_hour", 100), "per_run_limit": ("per_run", 20)}
_STAT_WORDS = {"mean": "mean", "p50": "median", "p95": "p95", "p99": "p99", "max": "max"}
_UNIT_WORDS = {"hourly": "hourly changes", "daily": "daily changes", "per_run": "changes per run"}


class RateStats(BaseModel):
    """A distribution summary; `observations` is how many hours, days, runs or approvals."""

    observations: int = 0
    mean: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    max: float = 0.0

    def stat(self, name: str) -> float:
        return float(getattr(self, name))


class Approvals(BaseModel):
    requested: int = 0
    approved: int = 0
    denied: int = 0
    timeouts: int = 0
    escalated: int = 0
    latency_s: RateStats = Field(default_factory=RateStats)


class GuardrailFigures(BaseModel):
    evaluated: int = 0
    allowed: int = 0
    held: int = 0
    denied: int = 0
    by_guardrail: dict[str, dict[str, int]] = Field(default_factory=dict)  # name -> {hold: n, deny: n}


class KindBaseline(BaseModel):
    kind: str
    window_start: datetime | None = None
    window_end: datetime
    hours: int = 0
    days: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    changes: int = 0
    automated: int = 0
    by_mode: dict[str, int] = Field(default_factory=dict)
    hourly: RateStats = Field(default_factory=RateStats)
    daily: RateStats = Field(default_factory=RateStats)
    per_run: RateStats = Field(default_factory=RateStats)
    approvals: Approvals = Field(default_factory=Approvals)
    guardrails: GuardrailFigures = Field(default_factory=GuardrailFigures)
    rollbacks: int = 0
    expiries: int = 0
    compensations: int = 0
    overrides: int = 0
    # Hourly counts over the window, oldest first: for charts, left out of JSON output.
    series: list[int] = Field(default_factory=list, exclude=True)

    @property
    def history_days(self) -> float:
        """How long this kind has been observed: from its first change in the window to now.
        The window starts at that change's UTC midnight so the daily figures count whole
        days, but the hours before it are no history: 20 minutes after the very first
        change this is 0.01 days, not the hours since midnight."""
        if self.first_at is None:
            return self.hours / 24
        return max(0.0, (self.window_end - self.first_at) / DAY)

    def stat(self, name: str) -> float:
        """'p99_hourly', 'max_per_run', 'mean_daily' ... -> the figure."""
        agg, _, unit = name.partition("_")
        return {"hourly": self.hourly, "daily": self.daily, "per_run": self.per_run}[unit].stat(agg)


class Baseline(BaseModel):
    generated_at: datetime
    since: datetime | None = None
    elapsed_s: float = 0.0
    kinds: list[KindBaseline] = Field(default_factory=list)

    def for_kind(self, kind: str) -> KindBaseline | None:
        return next((k for k in self.kinds if k.kind == kind), None)


# -- statistics ---------------------------------------------------------------------------
def distribution(histogram: dict[float, int], zeros: int = 0) -> RateStats:
    """Summarise {value: how often} (plus `zeros` observations of 0) with nearest-rank percentiles."""
    counts = dict(histogram)
    if zeros:
        counts[0] = counts.get(0, 0) + zeros
    counts = {v: n for v, n in counts.items() if n > 0}
    total = sum(counts.values())
    if total == 0:
        return RateStats()
    ordered = sorted(counts.items())

    def rank(p: float) -> float:
        wanted = max(1, math.ceil(p / 100 * total - 1e-9))
        seen = 0
        for value, n in ordered:
            seen += n
            if seen >= wanted:
                return float(value)
        return float(ordered[-1][0])

    return RateStats(
        observations=total,
        mean=sum(v * n for v, n in ordered) / total,
        p50=rank(50),
        p95=rank(95),
        p99=rank(99),
        max=float(ordered[-1][0]),
    )


def _floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _floor_day(at: datetime) -> datetime:
    return _floor_hour(at).replace(hour=0)


def _parse(at: str | None) -> datetime | None:
    return datetime.fromisoformat(at) if at else None


def _hour_key(at: datetime) -> str:
    return iso(at)[:13]


# -- the queries (their SQL, per backend, is in the ledger: SqliteSQL / PostgresSQL) ---------
def _change_buckets(ledger: Ledger, since: str, until: str, kinds) -> dict[str, dict[str, Any]]:
    """Per kind: hourly counts and counts by mode (one covering-index scan), first and last change."""
    where, args = ledger.kinds_filter("kind", kinds)
    rows = ledger.query("BASELINE_CHANGE_BUCKETS", [since, until, *args], where)
    out: dict[str, dict[str, Any]] = {}
    for kind, hour, mode, n in rows:
        entry = out.setdefault(kind, {"hours": defaultdict(int), "modes": defaultdict(int)})
        entry["hours"][hour] += n
        entry["modes"][mode] += n
    for kind, entry in out.items():  # two index seeks per kind
        entry["first"], entry["last"] = ledger.query("BASELINE_FIRST_LAST", [kind, since, until])[0]
    return out


def _batch_histograms(ledger: Ledger, since: str, until: str, kinds) -> dict[str, dict[int, int]]:
    where, args = ledger.kinds_filter("kind", kinds)
    rows = ledger.query("BASELINE_BATCHES", [since, until, *args], where)
    out: dict[str, dict[int, int]] = defaultdict(dict)
    for kind, n, runs in rows:
        out[kind][n] = runs
    return out


def _approvals(ledger: Ledger, since: str, until: str, kinds) -> dict[str, Approvals]:
    """One pass over the approval events: each step's request, answer and latency, per kind."""
    where, args = ledger.kinds_filter("kind", kinds)
    rows = ledger.query("BASELINE_APPROVALS", [since, until, *args], where)
    out: dict[str, Approvals] = {}
    latency: dict[str, dict[float, int]] = defaultdict(dict)
    for kind, secs, n, approved, denied, timeouts, escalated in rows:
        fig = out.setdefault(kind, Approvals())
        fig.requested += n
        fig.approved += approved or 0
        fig.denied += denied or 0
        fig.timeouts += timeouts or 0
        fig.escalated += escalated or 0
        if secs is not None and (approved or denied):
            latency[kind][secs] = (approved or 0) + (denied or 0)
    for kind, hist in latency.items():
        out[kind].latency_s = distribution(hist)
    return out


def _guardrails(ledger: Ledger, since: str, until: str, kinds) -> dict[str, GuardrailFigures]:
    """Gate outcomes per kind (one JSON parse per evaluation), then the objecting verdicts."""
    rows = ledger.query("BASELINE_GUARDRAIL_OUTCOMES", [since, until])
    wanted = None if kinds is None else set(kinds)
    out: dict[str, GuardrailFigures] = {}
    for pair, n in rows:
        kind, outcome = json.loads(pair)
        if wanted is not None and kind not in wanted:
            continue
        fig = out.setdefault(kind, GuardrailFigures())
        fig.evaluated += n
        if outcome == "hold":
            fig.held += n
        elif outcome == "deny":
            fig.denied += n
        else:
            fig.allowed += n
    if not any(f.held or f.denied for f in out.values()):
        return out
    where, args = ledger.kinds_filter("kind", kinds)
    verdicts = ledger.query("BASELINE_GUARDRAIL_VERDICTS", [since, until, *args], where)
    for kind, guardrail, outcome, n in verdicts:
        out.setdefault(kind, GuardrailFigures()).by_guardrail.setdefault(guardrail, {})[outcome] = n
    return out


def _reverts(ledger: Ledger, since: str, until: str, kinds) -> dict[tuple[str, str], dict[str, int]]:
    """Per (kind, mode): reverts by reason, for changes made in the window."""
    where, args = ledger.kinds_filter("c.kind", kinds)
    rows = ledger.query("BASELINE_REVERTS", [since, until, *args], where)
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for kind, mode, reason, n in rows:
        out[kind, mode][reason] = n
    return out


def _overrides(ledger: Ledger, since: str, until: str, kinds) -> dict[tuple[str, str], int]:
    """Per (kind, mode): automated changes rolled back, or reversed by a human-approved inverse."""
    where, args = ledger.kinds_filter("c.kind", kinds)
    rows = ledger.query("BASELINE_OVERRIDES", [since, until, *args, since, until, since, *args], where)
    return {(kind, mode): n for kind, mode, n in rows}


def _per_kind(by_mode: dict[tuple[str, str], Any], merge) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (kind, _mode), value in by_mode.items():
        out[kind] = merge(out.get(kind), value)
    return out


def _add_counts(a: dict[str, int] | None, b: dict[str, int]) -> dict[str, int]:
    merged = dict(a or {})
    for key, n in b.items():
        merged[key] = merged.get(key, 0) + n
    return merged


# -- the figures --------------------------------------------------------------------------
def _rates(kind: str, entry: dict[str, Any], batches: dict[int, int], since: datetime | None,
           now: datetime) -> KindBaseline:
    first, last = _parse(entry["first"]), _parse(entry["last"])
    start = _floor_day(first)
    if since is not None:
        start = max(start, _floor_hour(since))
    hours = max(1, math.ceil((now - start) / HOUR))
    days = max(1, math.ceil((now - start) / DAY))
    hourly: dict[str, int] = entry["hours"]
    daily: dict[str, int] = defaultdict(int)
    for hour, n in hourly.items():
        daily[hour[:10]] += n
    hour_hist: dict[float, int] = defaultdict(int)
    for n in hourly.values():
        hour_hist[n] += 1
    day_hist: dict[float, int] = defaultdict(int)
    for n in daily.values():
        day_hist[n] += 1
    series = [hourly.get(_hour_key(start + i * HOUR), 0) for i in range(hours)]
    modes = dict(sorted(entry["modes"].items()))
    return KindBaseline(
        kind=kind,
        window_start=start,
        window_end=now,
        hours=hours,
        days=days,
        first_at=first,
        last_at=last,
        changes=sum(modes.values()),
        automated=sum(n for m, n in modes.items() if m != "approve"),
        by_mode=modes,
        hourly=distribution(hour_hist, zeros=hours - len(hourly)),
        daily=distribution(day_hist, zeros=days - len(daily)),
        per_run=distribution(batches),
        series=series,
    )


def compute_baseline(
    ledger: Ledger,
    now: datetime,
    since: datetime | None = None,
    kinds: Iterable[str] | None = None,
) -> Baseline:
    """Every figure for every kind (or the given kinds) from `since` (default: all) to `now`."""
    started = time.perf_counter()
    kinds = None if kinds is None else sorted(set(kinds))
    lo, hi = iso(since) if since else "", iso(now)
    buckets = _change_buckets(ledger, lo, hi, kinds)
    batches = _batch_histograms(ledger, lo, hi, kinds)
    approvals = _approvals(ledger, lo, hi, kinds)
    rails = _guardrails(ledger, lo, hi, kinds)
    reverts = _per_kind(_reverts(ledger, lo, hi, kinds), _add_counts)
    overrides = _per_kind(_overrides(ledger, lo, hi, kinds), lambda a, b: (a or 0) + b)
    names = set(buckets) | set(approvals) | set(rails)
    if kinds is not None:
        names |= set(kinds)
    result = []
    for kind in sorted(names):
        if kind in buckets:
            figures = _rates(kind, buckets[kind], batches.get(kind, {}), since, now)
        else:
            figures = KindBaseline(kind=kind, window_end=now)
        figures.approvals = approvals.get(kind, Approvals())
        figures.guardrails = rails.get(kind, GuardrailFigures())
        undone = reverts.get(kind, {})
        figures.rollbacks = undone.get("rollback", 0)
        figures.expiries = undone.get("expiry", 0)
        figures.compensations = undone.get("compensation", 0)
        figures.overrides = overrides.get(kind, 0)
        result.append(figures)
    return Baseline(generated_at=now, since=since, kinds=result, elapsed_s=time.perf_counter() - started)


def rate_figures(ledger: Ledger, kind: str, now: datetime, since: datetime | None) -> KindBaseline | None:
    """Only the rate figures (hourly, daily, per run) of one kind: what a threshold needs."""
    lo, hi = iso(since) if since else "", iso(now)
    buckets = _change_buckets(ledger, lo, hi, [kind])
    if kind not in buckets:
        return None
    return _rates(kind, buckets[kind], _batch_histograms(ledger, lo, hi, [kind]).get(kind, {}), since, now)


# -- baseline-derived guardrail thresholds ------------------------------------------------
def describe_stat(stat: str) -> str:
    """'p99_hourly' -> 'p99 of hourly changes'."""
    agg, _, unit = stat.partition("_")
    return f"{_STAT_WORDS[agg]} of {_UNIT_WORDS[unit]}"


def _num(value: float) -> str:
    return f"{round(value, 2):g}"


def derive_threshold(ledger: Ledger, kind: str, options: dict[str, Any], now: datetime) -> tuple[float, str] | None:
    """One guardrail's threshold and where it came from, or None if it has no baseline rule."""
    rule = options.get("baseline")
    gtype = options.get("type")
    if not rule or gtype not in BASELINE_STATS:
        return None
    spec = rule if isinstance(rule, BaselineSpec) else BaselineSpec.model_validate(rule)
    option, default = STATIC_OPTION[gtype]
    static = float(options.get(option, default))
    figures = rate_figures(ledger, kind, now, now - timedelta(days=spec.window_days))
    days = figures.history_days if figures else 0.0
    if figures is None or days < spec.min_days:
        return static, f"static: not enough history ({_num(days)} of {_num(spec.min_days)} days)"
    observed = figures.stat(spec.stat)
    raw = observed * spec.factor
    limit = float(math.floor(raw + 1e-9))
    text = f"baseline: {describe_stat(spec.stat)} ({_num(observed)}) × {_num(spec.factor)} = {_num(raw)}"
    if limit != raw:
        text += f", rounded down to {_num(limit)}"
    if limit < spec.floor:
        limit = float(spec.floor)
        text += f", raised to the floor of {_num(spec.floor)}"
    return limit, text + f" over {_num(days)} days"


def derive_thresholds(
    ledger: Ledger, kind: str, guardrails: list[dict[str, Any]], now: datetime
) -> tuple[dict[str, float], dict[str, str]]:
    """Thresholds and their sources, keyed by guardrail type, for `GuardrailContext`.

    Only guardrails with a `baseline` rule appear; the others keep their static option.
    Computed in an activity (it reads the ledger); the workflow sees plain numbers, so
    guardrail evaluation stays deterministic and the number used is in the history.
    """
    thresholds: dict[str, float] = {}
    sources: dict[str, str] = {}
    for options in guardrails:
        derived = derive_threshold(ledger, kind, options, now)
        if derived is not None:
            thresholds[options["type"]], sources[options["type"]] = derived
    return thresholds, sources


class ThresholdCache:
    """`derive_thresholds` at most once per kind and rule per `ttl_s` (a worker's hot path).

    A derived threshold moves slowly (it is a percentile over weeks), so recomputing it for
    every step of a 500-change run would only cost time.
    """

    def __init__(self, ledger: Ledger, ttl_s: float = 300.0):
        self.ledger = ledger
        self.ttl_s = ttl_s
        self._cache: dict[tuple[str, str], tuple[float, tuple[dict[str, float], dict[str, str]]]] = {}

    def derive(self, kind: str, guardrails: list[dict[str, Any]],
               now: datetime) -> tuple[dict[str, float], dict[str, str]]:
        if not any(g.get("baseline") for g in guardrails):
            return {}, {}
        key = (kind, repr([g for g in guardrails if g.get("baseline")]))
        stamp = now.timestamp()
        hit = self._cache.get(key)
        if hit is not None and 0 <= stamp - hit[0] < self.ttl_s:
            return dict(hit[1][0]), dict(hit[1][1])
        value = derive_thresholds(self.ledger, kind, guardrails, now)
        self._cache[key] = (stamp, value)
        return dict(value[0]), dict(value[1])
