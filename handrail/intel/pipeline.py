"""One threat-intel sync pass, composed from the pure pieces.

Order: normalise every feed (cached by content) -> never-block guardrails per feed ->
consensus over the cleaned feeds. Guardrails run *before* consensus on purpose:

* a dropped entry (a feed's ``/8`` over the CRM) must not lend support to anything;
* drops are attributed to the feed that carried them, so the alert can name it;
* the validated output can then only contain entries that passed the guardrails.

Each step has an activity-shaped function (hashes and counts in, hashes and counts out)
for the Temporal activities to call; :func:`run_sync_pass` chains them in one process,
handing the in-memory sets along instead of re-reading them from the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from handrail.intel.consensus import DEFAULT_THRESHOLD, find_consensus
from handrail.intel.guardrails import PopularNames, apply_guardrails
from handrail.intel.models import (
    ConsensusResult,
    FeedParse,
    FeedSpec,
    GuardrailReport,
    SyncPassResult,
)
from handrail.intel.sets import IndicatorSet
from handrail.intel.store import IntelStore

Protected = Mapping[str, str] | Sequence[str]


def normalize_stored_feed(store: IntelStore, spec: FeedSpec, feed_sha256: str) -> FeedParse:
    """Activity shape: raw feed by hash -> its parse report (with ``set_sha256``)."""
    return store.normalize(store.get_feed(feed_sha256), feed=spec.name, format=spec.format,
                           columns=spec.columns)


def guard_stored_set(store: IntelStore, feed: str, set_sha256: str,
                     protected: Protected = (), allowlist: Sequence[str] = (),
                     popular: PopularNames | None = None) -> GuardrailReport:
    """Activity shape: normalized set by hash -> guardrail report (with ``clean_set_sha256``)."""
    kept, report = apply_guardrails(feed, store.get_set(set_sha256), protected, allowlist=allowlist,
                                    popular=popular)
    return report.model_copy(update={"clean_set_sha256": store.put_set(kept)})


def consensus_of_stored(store: IntelStore, sets: Mapping[str, str],
                        weights: Mapping[str, float] | None = None,
                        threshold: float = DEFAULT_THRESHOLD) -> ConsensusResult:
    """Activity shape: feed name -> clean set hash, in; consensus hashes and counts, out."""
    c = find_consensus({n: store.get_set(h) for n, h in sets.items()}, weights, threshold)
    return c.result(store.put_set(c.validated), store.put_set(c.suspect))


def run_sync_pass(feeds: Sequence[tuple[FeedSpec, bytes]], store: IntelStore, *,
                  protected: Protected = (), allowlist: Sequence[str] = (),
                  threshold: float = DEFAULT_THRESHOLD) -> SyncPassResult:
    """Normalise, guard and find consensus for ``feeds`` (spec, raw bytes)."""
    parses: list[FeedParse] = []
    guards: list[GuardrailReport] = []
    clean: dict[str, IndicatorSet] = {}
    for spec, data in feeds:
        if spec.name in clean:
            raise ValueError(f"feed name {spec.name!r} given twice")
        report, indicators = store.normalize_with_set(data, feed=spec.name, format=spec.format,
                                                      columns=spec.columns)
        assert indicators is not None
        kept, guard = apply_guardrails(spec.name, indicators, protected, allowlist=allowlist)
        guards.append(guard.model_copy(update={"clean_set_sha256": store.put_set(kept)}))
        parses.append(report)
        clean[spec.name] = kept
    c = find_consensus(clean, {spec.name: spec.weight for spec, _ in feeds}, threshold)
    result = c.result(store.put_set(c.validated), store.put_set(c.suspect))
    return SyncPassResult(feeds=parses, guardrails=guards, consensus=result)
