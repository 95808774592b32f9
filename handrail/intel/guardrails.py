"""The never-block guardrails for intel-driven blocking, as pure vectorised functions.

(a) Protected networks (the SaaS CRM, the largest customer, ...): any entry that
    *overlaps* one is dropped — an address inside it, a network inside it, and a network
    covering it (a ``/8`` containing the CRM's ``/16``). The report names the feed and
    the entries, because a feed that lists your CRM is probably faulty.
(b) Special-use space is never blocked: private, loopback, link-local, multicast,
    reserved, unspecified, CGNAT, documentation, benchmarking — IPv4 and IPv6. An entry
    overlapping such a range is dropped whole (a ``/7`` that covers ``10/8`` too).
(c) Names on the allowlist (the company's own domains and the SaaS it runs on: what the
    ``never_touch`` guardrails of the tools the sync feeds refuse): a domain that is, or is
    under, a listed name, and a URL on such a host, are dropped and reported like an entry
    overlapping a protected network — a feed naming ``salesforce.com`` is faulty too.
(d) Popular sites (:class:`PopularNames`): a domain ranked inside the top-sites cut-off
    (``[settings.popular]``, the ranking the ``popular_domain`` guardrail reads), and a URL
    on such a site's own host, are dropped: the sync has no human to ask, and a feed naming
    a site the company runs on is far more often wrong than right. A URL on a user-content
    platform's service host (``storage.googleapis.com/<bucket>/...``) is a customer's page
    and stays. Without a readable list every name is dropped (fail safe, as every sinkhole
    holds without one); addresses are not names and are judged as before.
(e) A volume check for the caller: too many additions in one sync hold for a human.

Overlap is one ``np.searchsorted`` over the (sorted, disjoint) table per entry array:
no loop over entries, whatever the feed size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from handrail.gate import canon
from handrail.gate.models import SetCheck
from handrail.intel.models import GuardrailDrop, GuardrailReport, VolumeVerdict
from handrail.intel.sets import IndicatorSet, cidr_interval, interval_text, merge, overlapping

SPECIAL_V4: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified / this network (RFC 791)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link-local (RFC 3927)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
    ("192.88.99.0/24", "reserved, former 6to4 relay anycast (RFC 7526)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved, incl. limited broadcast (RFC 1112, RFC 919)"),
)

# Specific IPv6 ranges first; then everything outside global unicast 2000::/3.
SPECIAL_V6: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified (RFC 4291)"),
    ("::1/128", "loopback (RFC 4291)"),
    ("::ffff:0:0/96", "IPv4-mapped (RFC 4291)"),
    ("64:ff9b::/96", "NAT64 well-known prefix (RFC 6052)"),
    ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("2001:2::/48", "benchmarking (RFC 5180)"),
    ("2001:10::/28", "ORCHID, deprecated (RFC 4843)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("fc00::/7", "unique local, private (RFC 4193)"),
    ("fe80::/10", "link-local (RFC 4291)"),
    ("fec0::/10", "site-local, deprecated (RFC 3879)"),
    ("ff00::/8", "multicast (RFC 4291)"),
)
SPECIAL_V6_COARSE: tuple[tuple[str, str], ...] = (
    ("::/3", "reserved, outside global unicast 2000::/3 (RFC 4291)"),
    ("4000::/2", "reserved, outside global unicast 2000::/3 (RFC 4291)"),
    ("8000::/1", "reserved, outside global unicast 2000::/3 (RFC 4291)"),
)

MAX_PROTECTED_HITS = 1000
MAX_EXAMPLES_PER_REASON = 100
PROTECTED_PREFIX = "overlaps protected"
ALLOWLIST_PREFIX = "on the allowlist"
POPULAR_PREFIX = "popular site"
NO_RANKING_PREFIX = "no readable top-sites list"


class PopularNames:
    """Which names from a feed the top-sites list keeps from automatic blocking.

    ``ranking`` is a loaded :class:`handrail.runbooks.phishing.popular.Ranking` (None when
    the list cannot be read: ``problem`` says why, and every name is dropped). A name stands
    where the ``popular_domain`` guardrail says it stands (``Ranking.rank_of_host``)."""

    def __init__(self, ranking, cutoff: int, problem: str | None = None) -> None:
        self.ranking, self.cutoff, self.problem = ranking, cutoff, problem

    @property
    def reason(self) -> str:
        """The one sentence counted per feed (``dropped_by_reason``)."""
        if self.ranking is None:
            return (f"{NO_RANKING_PREFIX} ({self.problem}): a name from a feed is never blocked "
                    "automatically without one")
        return (f"{POPULAR_PREFIX} (inside the top-sites cut-off {self.cutoff:,}): a feed never blocks "
                "one automatically")

    def judge(self, name: str, url: bool) -> str | None:
        """None to keep ``name``; else how it is shown in the report (``github.com (rank 34)``)."""
        from urllib.parse import urlsplit

        if self.ranking is None:
            return name
        host = self.ranking.host_of(name)
        if not host:
            return None
        domain, rank = self.ranking.rank_of_host(host)
        if rank is None or rank > self.cutoff:
            return None
        if url:
            parts = urlsplit(name)
            if self.ranking.is_platform_host(host) and parts.path.strip("/"):
                return None  # a customer's page on a user-content platform's service host
        return f"{name} ({domain} is rank {rank:,})"


class _Table:
    """Sorted, pairwise-disjoint labelled ranges of one address family."""

    def __init__(self, version: int, rows: Sequence[tuple[int, int, str]]) -> None:
        rows = sorted(rows)
        dtype = np.int64 if version == 4 else object
        self.start = np.array([r[0] for r in rows], dtype=dtype)
        self.end = np.array([r[1] for r in rows], dtype=dtype)
        self.labels = [r[2] for r in rows]
        if len(rows) > 1 and not all(self.start[1:] > self.end[:-1]):
            raise ValueError("guardrail table ranges overlap")

    def hit(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        return overlapping(self.start, self.end, start, end)


def _table(version: int, rows: Sequence[tuple[str, str]], prefix: str) -> _Table:
    out = []
    for cidr, label in rows:
        v, s, e = cidr_interval(cidr)
        if v == version:
            out.append((s, e, f"{prefix}{label}"))
    return _Table(version, out)


_SPECIAL_TABLES = {
    4: [_table(4, SPECIAL_V4, "special-use: ")],
    6: [_table(6, SPECIAL_V6, "special-use: "), _table(6, SPECIAL_V6_COARSE, "special-use: ")],
}


def _protected_tables(protected: Mapping[str, str] | Sequence[str]) -> dict[int, list[_Table]]:
    """Protected networks as disjoint tables; overlapping or adjacent protections are
    merged into one block whose label names all of them."""
    if isinstance(protected, str):
        protected = [protected]
    items = list(protected.items()) if isinstance(protected, Mapping) else [
        (p, "") for p in protected]
    tables: dict[int, list[_Table]] = {4: [], 6: []}
    for version in (4, 6):
        rows = []
        for cidr, label in items:
            v, s, e = cidr_interval(cidr)
            if v == version:
                name = f"{cidr} ({label})" if label else cidr
                rows.append((s, e, f"overlaps protected network {name}"))
        if not rows:
            continue
        rows.sort()
        dtype = np.int64 if version == 4 else object
        ms, me = merge(np.array([r[0] for r in rows], dtype=dtype),
                       np.array([r[1] for r in rows], dtype=dtype))
        merged = []
        for s, e in zip(ms, me, strict=True):
            labels = [r[2] for r in rows if s <= r[0] and r[1] <= e]
            merged.append((s, e, labels[0] if len(labels) == 1 else
                           "overlaps protected networks " + ", ".join(
                               x.removeprefix("overlaps protected network ") for x in labels)))
        tables[version].append(_Table(version, merged))
    return tables


def _allowlisted(names: Sequence[str], listed: frozenset[str], counts: dict[str, int],
                 hits: list[GuardrailDrop]) -> list[bool]:
    """Which of ``names`` (domains or URLs) to keep: one on the allowlist, or on a host
    under it, is counted and reported as a protected hit (the gate's reading of a name,
    :func:`handrail.gate.canon.listed_entry`)."""
    keep = []
    for name in names:
        entry = canon.listed_entry(name, listed) if listed else None
        keep.append(entry is None)
        if entry is None:
            continue
        reason = f"{ALLOWLIST_PREFIX} ({entry})"
        counts[reason] = counts.get(reason, 0) + 1
        if len(hits) < MAX_PROTECTED_HITS:
            hits.append(GuardrailDrop(entry=name, reason=reason))
    return keep


def _popular(names: Sequence[str], keep: list[bool], url: bool, popular: PopularNames,
             counts: dict[str, int], examples: list[GuardrailDrop], max_examples: int) -> None:
    """Drop (in ``keep``) the names ``popular`` keeps from automatic blocking."""
    reason = popular.reason
    for i, name in enumerate(names):
        if not keep[i]:
            continue
        shown = popular.judge(name, url)
        if shown is None:
            continue
        keep[i] = False
        counts[reason] = counts.get(reason, 0) + 1
        if counts[reason] <= max_examples:
            examples.append(GuardrailDrop(entry=shown, reason=reason))


def _alert(feed: str, n_protected: int, hits: list[GuardrailDrop]) -> str | None:
    """One sentence naming the feed and the first protected entries it carried."""
    if not n_protected:
        return None
    kinds = {h.reason.startswith(ALLOWLIST_PREFIX) for h in hits}
    what = ("overlap protected networks or are on the allowlist" if kinds == {True, False}
            else "are on the allowlist" if kinds == {True} else "overlap protected networks")
    shown = ", ".join(h.entry for h in hits[:10])
    more = f" and {n_protected - 10} more" if n_protected > 10 else ""
    return f"feed {feed} looks faulty: {n_protected} entries {what}: {shown}{more}"


def apply_guardrails(
    feed: str,
    indicators: IndicatorSet,
    protected: Mapping[str, str] | Sequence[str] = (),
    *,
    allowlist: Sequence[str] = (),
    popular: PopularNames | None = None,
    max_examples: int = MAX_EXAMPLES_PER_REASON,
) -> tuple[IndicatorSet, GuardrailReport]:
    """Drop every entry that overlaps a protected network or special-use space, every
    domain or URL on the allowlist, and (with ``popular``) every popular name.

    ``protected`` is a list of CIDRs or a mapping CIDR -> label (``{"161.71.0.0/16":
    "CRM"}``); ``allowlist`` lists names (``salesforce.com`` covers ``login.salesforce.com``
    and URLs on either). Returns the kept set and a report naming the dropped entries and
    why. Protected hits come first: an entry that overlaps both is reported as protected.
    """
    prot = _protected_tables(protected)
    keep: dict[int, np.ndarray] = {}
    counts: dict[str, int] = {}
    hits: list[GuardrailDrop] = []
    examples: list[GuardrailDrop] = []
    n_protected = 0
    for version, start, end in ((4, indicators.v4_start, indicators.v4_end),
                                (6, indicators.v6_start, indicators.v6_end)):
        alive = np.ones(start.size, dtype=bool)
        if version == 6:  # IPv4 carried inside IPv6 (mapped, NAT64, 6to4, Teredo) first
            n_protected += _drop_embedded_v4(start, end, alive, True, prot[4], counts, hits,
                                             examples, max_examples)
        for is_protected, tables in ((True, prot[version]), (False, _SPECIAL_TABLES[version])):
            for table in tables:
                idx = np.flatnonzero(alive)
                if idx.size == 0:
                    break
                hit = table.hit(start[idx], end[idx])
                found = hit >= 0
                if not found.any():
                    continue
                dropped_idx, which = idx[found], hit[found]
                alive[dropped_idx] = False
                for t in np.unique(which).tolist():
                    sel = dropped_idx[which == t]
                    reason = table.labels[t]
                    counts[reason] = counts.get(reason, 0) + int(sel.size)
                    if is_protected:
                        n_protected += int(sel.size)
                    room = (MAX_PROTECTED_HITS - len(hits) if is_protected
                            else max_examples - sum(1 for x in examples if x.reason == reason))
                    target = hits if is_protected else examples
                    for i in sel[:max(room, 0)].tolist():
                        target.append(GuardrailDrop(
                            entry=interval_text(version, int(start[i]), int(end[i])),
                            reason=reason))
        if version == 6:  # then special-use IPv4 carried inside what IPv6 rules kept
            _drop_embedded_v4(start, end, alive, False, _SPECIAL_TABLES[4], counts, hits,
                              examples, max_examples)
        keep[version] = alive
    listed = canon.canonical_names(allowlist)
    keep_domains = _allowlisted(indicators.domains, listed, counts, hits)
    keep_urls = _allowlisted(indicators.urls, listed, counts, hits)
    n_protected += keep_domains.count(False) + keep_urls.count(False)
    if popular is not None:
        _popular(indicators.domains, keep_domains, False, popular, counts, examples, max_examples)
        _popular(indicators.urls, keep_urls, True, popular, counts, examples, max_examples)
    kept = indicators.select(keep[4], keep[6], keep_domains, keep_urls)
    dropped = len(indicators) - len(kept)
    report = GuardrailReport(
        feed=feed, kept=len(kept), dropped=dropped, dropped_by_reason=dict(sorted(counts.items())),
        protected_hits=hits, examples=examples, faulty=n_protected > 0,
        alert=_alert(feed, n_protected, hits))
    return kept, report


def _drop_embedded_v4(start: np.ndarray, end: np.ndarray, alive: np.ndarray,
                      is_protected: bool, tables: list[_Table], counts: dict[str, int], hits: list[GuardrailDrop],
                      examples: list[GuardrailDrop], max_examples: int) -> int:
    """Drop IPv6 entries whose embedded IPv4 (:func:`handrail.gate.canon.ipv4_views`, the
    same reading the gate uses) overlaps a protected network or IPv4 special-use space.
    Only entries inside an embedding prefix cost a Python step; the rest are skipped."""
    n_protected = 0
    embeds = np.zeros(start.size, dtype=bool)
    if start.size:
        for lo, hi in canon.EMBEDDING_RANGES:
            embeds |= (start <= hi) & (end >= lo)
    for i in np.flatnonzero(alive & embeds).tolist():
        views = canon.ipv4_views(int(start[i]), int(end[i]))
        reason = None
        for table in tables:
            for how, (s, e) in views:
                t = int(table.hit(np.array([s], dtype=np.int64), np.array([e], dtype=np.int64))[0])
                if t >= 0:
                    reason = f"{table.labels[t]} (as {how})"
                    break
            if reason:
                break
        if not reason:
            continue
        alive[i] = False
        counts[reason] = counts.get(reason, 0) + 1
        drop = GuardrailDrop(entry=interval_text(6, int(start[i]), int(end[i])), reason=reason)
        if is_protected:
            n_protected += 1
            if len(hits) < MAX_PROTECTED_HITS:
                hits.append(drop)
        elif sum(1 for x in examples if x.reason == reason) < max_examples:
            examples.append(drop)
    return n_protected


def _shown_hits(drops: Sequence[GuardrailDrop], total: int, where: str, cap: int) -> list[str]:
    """``entry: reason`` of the first ``cap`` drops, and how many more there were."""
    shown = [f"{h.entry}: {h.reason}" for h in drops[:cap]]
    if total > len(shown):
        shown.append(f"... {total - len(shown)} more {where}")
    return shown


def check_set_members(sha256: str, indicators: IndicatorSet,
                      protected: Mapping[str, str] | Sequence[str], *,
                      allowlist: Sequence[str] = (), cap: int = 20) -> SetCheck:
    """The gate's member-by-member check of a ``set:<sha256>`` batch target: the same
    guardrails the sync applied, run again on exactly the set the change names.
    ``allowlist`` is what the kind's ``never_touch`` guardrails refuse."""
    _, report = apply_guardrails("gate", indicators, protected, allowlist=allowlist, max_examples=cap)

    def total(prefix: str) -> int:
        return sum(n for r, n in report.dropped_by_reason.items() if r.startswith(prefix))

    n_protected, n_allowlisted = total(PROTECTED_PREFIX), total(ALLOWLIST_PREFIX)
    by_ip = [h for h in report.protected_hits if h.reason.startswith(PROTECTED_PREFIX)]
    by_name = [h for h in report.protected_hits if h.reason.startswith(ALLOWLIST_PREFIX)]
    return SetCheck(
        sha256=sha256, members=len(indicators),
        protected_hits=_shown_hits(by_ip, n_protected, "in protected networks", cap),
        special_hits=_shown_hits(report.examples, report.dropped - n_protected - n_allowlisted,
                                 "in special-use space", cap),
        allowlist_hits=_shown_hits(by_name, n_allowlisted, "on the allowlist", cap))


def volume_verdict(additions: int, threshold: int, *,
                   by_feed: Mapping[str, int] | None = None, top: int = 3) -> VolumeVerdict:
    """``allow`` up to ``threshold`` additions in one sync, else ``hold`` for a human.

    ``by_feed`` (feed -> how many of the additions it named) lets the reason name the
    feeds contributing most, so the analyst knows where to look.
    """
    ranked = sorted((by_feed or {}).items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    named = ", ".join(f"{f} ({n})" for f, n in ranked)
    if additions <= threshold:
        reason = f"{additions} additions within the threshold of {threshold}"
        return VolumeVerdict(verdict="allow", reason=reason, additions=additions,
                             threshold=threshold, top_feeds=ranked)
    reason = f"{additions} additions exceed the threshold of {threshold}"
    if named:
        reason += f"; most from {named}"
    return VolumeVerdict(verdict="hold", reason=reason, additions=additions,
                         threshold=threshold, top_feeds=ranked)
