"""Cross-feed consensus: which indicators enough independent feeds agree on.

Rule. The candidates are the distinct entries of all feeds. Feed F *names* a candidate
when the candidate lies entirely inside F's coverage — the union of F's entries:

* the same address or network listed by F (exact match);
* an address inside a network F lists (address-in-network);
* a network inside a bigger network F lists, or inside the union of several adjacent
  F entries (network-in-network): F has said every address of it is bad.

A network that F only *partly* covers is not named by F (F said nothing about the rest
of it); the addresses F does list inside it are themselves candidates, named by both.
The support of a candidate is the sum of the weights of the feeds naming it (its own
feed included). Support >= threshold (default 2.0, a 1e-9 tolerance for float sums):
*validated*; otherwise *suspect*. Domains and URLs match exactly (after normalisation):
a feed listing ``evil.com`` does not name ``a.evil.com``.

Speed: per feed, merge its (sorted) intervals once; then for all candidates at once,
``np.searchsorted`` on the merged starts finds the only interval that can contain each
candidate. Cost O((C + E) log E) per feed; no loop over networks per address.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from handrail.intel.models import ConsensusResult, SetCounts
from handrail.intel.sets import IndicatorSet, covered, merge, unique_v4, unique_v6

DEFAULT_THRESHOLD = 2.0
_EPS = 1e-9


@dataclass(frozen=True, eq=False)
class Consensus:
    validated: IndicatorSet
    suspect: IndicatorSet
    threshold: float
    weights: dict[str, float]

    def result(self, validated_sha256: str | None = None,
               suspect_sha256: str | None = None) -> ConsensusResult:
        return ConsensusResult(
            threshold=self.threshold, weights=self.weights,
            validated=set_counts(self.validated), suspect=set_counts(self.suspect),
            validated_sha256=validated_sha256, suspect_sha256=suspect_sha256)


def set_counts(s: IndicatorSet) -> SetCounts:
    return SetCounts(total=len(s), **s.counts())


class Coverage:
    """One feed's merged coverage, reusable for many membership questions."""

    def __init__(self, s: IndicatorSet) -> None:
        self.v4 = merge(s.v4_start, s.v4_end)
        self.v6 = merge(s.v6_start, s.v6_end)
        self.domains = frozenset(s.domains)
        self.urls = frozenset(s.urls)

    def names(self, c: IndicatorSet) -> tuple[np.ndarray, np.ndarray, list[bool], list[bool]]:
        """Masks over ``c``'s entries: which of them this feed names."""
        return (covered(*self.v4, c.v4_start, c.v4_end),
                covered(*self.v6, c.v6_start, c.v6_end),
                [d in self.domains for d in c.domains],
                [u in self.urls for u in c.urls])

    def count_named(self, c: IndicatorSet) -> int:
        m4, m6, md, mu = self.names(c)
        return int(m4.sum()) + int(m6.sum()) + sum(md) + sum(mu)


def _candidates(sets: Sequence[IndicatorSet]) -> IndicatorSet:
    s4, e4 = unique_v4(np.concatenate([s.v4_start for s in sets] or [np.zeros(0, np.int64)]),
                       np.concatenate([s.v4_end for s in sets] or [np.zeros(0, np.int64)]))
    s6, e6 = unique_v6(pair for s in sets
                       for pair in zip(s.v6_start.tolist(), s.v6_end.tolist(), strict=False))
    doms = sorted({d for s in sets for d in s.domains})
    urls = sorted({u for s in sets for u in s.urls})
    return IndicatorSet(s4, e4, s6, e6, tuple(doms), tuple(urls))


def find_consensus(
    feeds: Mapping[str, IndicatorSet],
    weights: Mapping[str, float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> Consensus:
    """Split the union of ``feeds`` into validated and suspect entries (rule above).

    ``weights`` maps feed name -> reliability (missing feeds weigh 1.0).
    """
    names = list(feeds)
    w = {n: float((weights or {}).get(n, 1.0)) for n in names}
    cand = _candidates([feeds[n] for n in names])
    sup4 = np.zeros(cand.ipv4, dtype=np.float64)
    sup6 = np.zeros(cand.ipv6, dtype=np.float64)
    supd = np.zeros(len(cand.domains), dtype=np.float64)
    supu = np.zeros(len(cand.urls), dtype=np.float64)
    for n in names:
        m4, m6, md, mu = Coverage(feeds[n]).names(cand)
        sup4 += w[n] * m4
        sup6 += w[n] * m6
        supd += w[n] * np.asarray(md, dtype=bool)
        supu += w[n] * np.asarray(mu, dtype=bool)
    limit = threshold - _EPS
    v4, v6, vd, vu = sup4 >= limit, sup6 >= limit, supd >= limit, supu >= limit
    validated = cand.select(v4, v6, vd.tolist(), vu.tolist())
    suspect = cand.select(~v4, ~v6, (~vd).tolist(), (~vu).tolist())
    return Consensus(validated, suspect, float(threshold), w)


def _v4_keys(s: IndicatorSet) -> np.ndarray:
    return (s.v4_start.astype(np.uint64) << np.uint64(32)) | s.v4_end.astype(np.uint64)


def additions(previous: IndicatorSet, current: IndicatorSet) -> IndicatorSet:
    """Entries of ``current`` that ``previous`` did not have (exact entries)."""
    prev = Coverage(previous)
    keep4 = ~np.isin(_v4_keys(current), _v4_keys(previous))
    p6 = set(zip(previous.v6_start.tolist(), previous.v6_end.tolist(), strict=False))
    keep6 = np.array([(a, b) not in p6 for a, b in zip(current.v6_start, current.v6_end, strict=False)],
                     dtype=bool)
    return current.select(keep4, keep6, [d not in prev.domains for d in current.domains],
                          [u not in prev.urls for u in current.urls])


def attribute(entries: IndicatorSet, feeds: Mapping[str, IndicatorSet]) -> dict[str, int]:
    """How many of ``entries`` each feed names — for "most of the additions came from X"."""
    return {n: Coverage(s).count_named(entries) for n, s in feeds.items()}
