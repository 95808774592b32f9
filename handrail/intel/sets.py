"""The in-memory shape of a normalized indicator set, and the interval arithmetic on it.

IPv4 entries are closed integer intervals ``[start, end]`` held in two ``int64`` numpy
arrays (an address is an interval of one); IPv6 entries are the same shape in ``object``
arrays of Python ints (128 bits do not fit numpy's integers, and IPv6 volumes in feeds
are small). Domains and URLs are sorted tuples of distinct strings.

Every function here is vectorised: a membership or overlap test over a million
intervals is a handful of ``np.searchsorted`` calls over sorted boundaries, never a
Python loop over entries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

V4_MAX = (1 << 32) - 1
V6_MAX = (1 << 128) - 1

_EMPTY_I64 = np.zeros(0, dtype=np.int64)


def _empty_obj() -> np.ndarray:
    return np.zeros(0, dtype=object)


@dataclass(frozen=True, eq=False)
class IndicatorSet:
    """Distinct, sorted indicators of one feed (or of a consensus result)."""

    v4_start: np.ndarray
    v4_end: np.ndarray
    v6_start: np.ndarray
    v6_end: np.ndarray
    domains: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()

    # construction -----------------------------------------------------------------
    @classmethod
    def empty(cls) -> IndicatorSet:
        return cls(_EMPTY_I64, _EMPTY_I64, _empty_obj(), _empty_obj())

    @classmethod
    def build(
        cls,
        v4_start: np.ndarray | Iterable[int] = (),
        v4_end: np.ndarray | Iterable[int] = (),
        v6: Iterable[tuple[int, int]] = (),
        domains: Iterable[str] = (),
        urls: Iterable[str] = (),
    ) -> IndicatorSet:
        """Sort and de-duplicate raw entries into a canonical set."""
        s4, e4 = unique_v4(np.asarray(v4_start, dtype=np.int64), np.asarray(v4_end, dtype=np.int64))
        s6, e6 = unique_v6(v6)
        return cls(s4, e4, s6, e6, tuple(sorted(set(domains))), tuple(sorted(set(urls))))

    # sizes --------------------------------------------------------------------------
    @property
    def ipv4(self) -> int:
        return int(self.v4_start.size)

    @property
    def ipv6(self) -> int:
        return int(self.v6_start.size)

    @property
    def ipv4_networks(self) -> int:
        return int(np.count_nonzero(self.v4_end != self.v4_start))

    @property
    def ipv6_networks(self) -> int:
        return int(np.count_nonzero(self.v6_end != self.v6_start)) if self.ipv6 else 0

    def __len__(self) -> int:
        return self.ipv4 + self.ipv6 + len(self.domains) + len(self.urls)

    def counts(self) -> dict[str, int]:
        return {
            "ipv4": self.ipv4,
            "ipv4_networks": self.ipv4_networks,
            "ipv6": self.ipv6,
            "ipv6_networks": self.ipv6_networks,
            "domains": len(self.domains),
            "urls": len(self.urls),
        }

    # selection ----------------------------------------------------------------------
    def select(self, keep_v4: np.ndarray, keep_v6: np.ndarray,
               keep_domains: Iterable[bool] | None = None,
               keep_urls: Iterable[bool] | None = None) -> IndicatorSet:
        """The sub-set whose entries the boolean masks keep (order stays canonical)."""
        doms = self.domains if keep_domains is None else tuple(
            d for d, k in zip(self.domains, keep_domains, strict=False) if k)
        urls = self.urls if keep_urls is None else tuple(
            u for u, k in zip(self.urls, keep_urls, strict=False) if k)
        return IndicatorSet(self.v4_start[keep_v4], self.v4_end[keep_v4],
                            self.v6_start[keep_v6], self.v6_end[keep_v6], doms, urls)

    def as_text(self) -> list[str]:
        """Every entry as text (addresses, CIDRs, domains, URLs) — for small sets and tests."""
        out = [interval_text(4, int(s), int(e)) for s, e in zip(self.v4_start, self.v4_end, strict=False)]
        out += [interval_text(6, int(s), int(e)) for s, e in zip(self.v6_start, self.v6_end, strict=False)]
        return out + list(self.domains) + list(self.urls)


# canonical forms -------------------------------------------------------------------
def unique_v4(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct IPv4 intervals sorted by (start, end), via one sort of a packed 64-bit key."""
    if start.size == 0:
        return _EMPTY_I64, _EMPTY_I64
    key = np.sort((start.astype(np.uint64) << np.uint64(32)) | end.astype(np.uint64))
    if key.size > 1:  # (np.unique hashes before sorting in numpy 2.x: several times slower)
        keep = np.empty(key.size, dtype=bool)
        keep[0] = True
        np.not_equal(key[1:], key[:-1], out=keep[1:])
        key = key[keep]
    return (key >> np.uint64(32)).astype(np.int64), (key & np.uint64(V4_MAX)).astype(np.int64)


def unique_v6(pairs: Iterable[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    uniq = sorted(set(pairs))
    s = np.empty(len(uniq), dtype=object)
    e = np.empty(len(uniq), dtype=object)
    for i, (a, b) in enumerate(uniq):
        s[i] = a
        e[i] = b
    return s, e


def interval_text(version: int, start: int, end: int) -> str:
    """``1.2.3.4``, ``10.0.0.0/8``, or ``a-b`` for an interval that is not one CIDR block."""
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    if start == end:
        return str(cls(start))
    size = end - start + 1
    bits = 32 if version == 4 else 128
    if size & (size - 1) == 0 and start % size == 0:
        return f"{cls(start)}/{bits - size.bit_length() + 1}"
    return f"{cls(start)}-{cls(end)}"


def cidr_interval(text: str) -> tuple[int, int, int]:
    """(version, start, end) of a CIDR or address written by a human (config, tests)."""
    net = ipaddress.ip_network(text.strip(), strict=True)
    return net.version, int(net.network_address), int(net.broadcast_address)


# interval algebra -------------------------------------------------------------------
def merge(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals as sorted, disjoint, non-adjacent intervals.

    Input must be sorted by start (canonical sets are).
    """
    if start.size == 0:
        return start, end
    run_max = np.maximum.accumulate(end)
    new = np.empty(start.size, dtype=bool)
    new[0] = True
    new[1:] = start[1:] > run_max[:-1] + 1
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, start.size - 1)
    return start[first], run_max[last]


def covered(m_start: np.ndarray, m_end: np.ndarray,
            start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """For each interval [start, end]: is it entirely inside the merged set (m_start, m_end)?

    ``start`` must be sorted (canonical sets are). Each merged interval k claims the run
    of candidates whose start lies in it, found with two ``searchsorted`` of the (smaller)
    merged boundaries into the candidates; a candidate is covered when its end is within
    the end of the interval that claims it.
    """
    if m_start.size == 0 or start.size == 0:
        return np.zeros(start.size, dtype=bool)
    lo = np.searchsorted(start, m_start, side="left")
    hi = np.searchsorted(start, m_end, side="right")
    counts = hi - lo
    claimed = np.flatnonzero(counts)
    if claimed.size == 0:
        return np.zeros(start.size, dtype=bool)
    counts, lo = counts[claimed], lo[claimed]
    # positions lo_k .. hi_k - 1 for every claiming interval k, laid end to end
    offsets = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    positions = offsets + np.arange(offsets.size)
    out = np.zeros(start.size, dtype=bool)
    out[positions] = end[positions] <= np.repeat(m_end[claimed], counts)
    return out


def overlapping(t_start: np.ndarray, t_end: np.ndarray,
                start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Index into the table of an interval overlapping each [start, end], or -1.

    The table must be sorted by start and pairwise disjoint. The candidate is the last
    table interval starting at or before ``end``; since disjoint sorted intervals also
    have sorted ends, if that one ends before ``start`` no earlier one can reach it.
    """
    if t_start.size == 0 or start.size == 0:
        return np.full(start.size, -1, dtype=np.int64)
    j = np.searchsorted(t_start, end, side="right") - 1
    ok = j >= 0
    jj = np.where(ok, j, 0).astype(np.int64)
    ok &= t_end[jj] >= start
    return np.where(ok, jj, -1).astype(np.int64)
