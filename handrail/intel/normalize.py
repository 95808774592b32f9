"""Parse one feed's bytes into a normalized :class:`IndicatorSet` plus counted rejects.

Formats: FireHOL ``ipset``/``netset`` text, ``csv`` with a column mapping, STIX 2.1
bundles. Indicators are data: nothing here resolves, fetches or opens anything.

Normalisation rules (a blocklist must mean exactly one thing):

* IPv4 is strict dotted-quad decimal. A leading zero in an octet (``010.1.1.1``) is
  rejected: some parsers read it as octal (8.1.1.1), others as decimal.
* A network with host bits set (``1.2.3.4/24``) is **rejected**, not masked to
  ``1.2.3.0/24``: the feed said something inconsistent, and silently widening a single
  address to 256 addresses is the wrong direction for a blocking system.
* ``/32`` and ``/128`` become plain addresses; an IPv4-mapped IPv6 address
  (``::ffff:1.2.3.4``, or a mapped network of prefix >= 96) becomes the IPv4 entry.
* Prefix lengths are decimal without leading zeros; netmask notation is rejected.
* Domains are lower-cased, IDNA (UTS 46) encoded to ASCII, and must have a registrable
  part under a known public suffix (ICANN section; :mod:`handrail.suffixes`, never the
  network). A public suffix itself is rejected, a platform's too (``github.io``: a block
  of it is a block of every customer's site under it).
* URLs: scheme and host lower-cased, host normalised as above, default port dropped,
  empty path becomes ``/``, fragment dropped, unsafe characters percent-encoded.

Speed: the text fast path parses every plain ``a.b.c.d`` / ``a.b.c.d/p`` line with numpy
over the whole buffer at once. It only *accepts* lines that the per-line reference
parser (:func:`parse_ip`) would accept with the same value; every other non-blank line
goes to the reference parser, so rejection rules have exactly one definition.
"""

from __future__ import annotations

import csv
import hashlib
import io
import ipaddress
import json
import re
import socket
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from handrail.gate.canon import UrlError, canonical_domain, canonical_url
from handrail.intel.models import FeedFormat, FeedParse, RejectExample
from handrail.intel.sets import IndicatorSet

PARSER_VERSION = "handrail.intel.normalize/2"
MAX_EXAMPLES_PER_REASON = 100

# reasons ---------------------------------------------------------------------------
R_NOT_IP = "not an IP address"
R_RANGE_SYNTAX = "address ranges (a-b) not supported"
R_BAD_V4 = "invalid IPv4 address"
R_LEADING_ZEROS = "leading zeros in IPv4 octet (ambiguous octal)"
R_OCTET_RANGE = "IPv4 octet out of range"
R_BAD_V6 = "invalid IPv6 address"
R_ZONE = "IPv6 zone index not allowed"
R_PREFIX = "invalid prefix length"
R_HOST_BITS = "host bits set"
R_FAMILY = "address family does not match the observable type"
R_ENCODING = "not valid UTF-8"
R_EMPTY = "empty value"
R_MISSING_COLUMN = "missing column"
R_BAD_DOMAIN = "invalid domain name"
R_IDNA = "invalid internationalised domain name (IDNA)"
R_NO_SUFFIX = "domain has no known public suffix"
R_SUFFIX_ONLY = "domain is a public suffix"
R_BAD_URL = "invalid URL"
R_URL_SCHEME = "unsupported URL scheme"
R_URL_HOST = "URL host is not a single address or valid domain"
R_PATTERN = "unparseable STIX pattern"
R_STIX_OBJECT = "malformed STIX indicator"


class Rejected(ValueError):
    """One item failed normalisation; ``reason`` is the stable, countable explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FeedFormatError(ValueError):
    """The feed as a whole cannot be read in the declared format (not one bad line)."""


@dataclass(frozen=True, eq=False)
class ParsedFeed:
    report: FeedParse
    indicators: IndicatorSet


# single values ---------------------------------------------------------------------
_V4_CHARS = frozenset("0123456789.")


def _prefix(slash: str, text: str, bits: int) -> int:
    """The prefix length after ``/`` (``bits`` without one). More than three digits is
    refused before ``int()``: no prefix needs them, and ``int()`` of thousands of digits
    raises ValueError (Python's digit limit), which is not a rejection."""
    if not slash:
        return bits
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0") or len(text) > 3:
        raise Rejected(R_PREFIX)
    p = int(text)
    if p > bits:
        raise Rejected(R_PREFIX)
    return p


_HEX_COLON = frozenset("0123456789abcdefABCDEF:")
_inet_pton = socket.inet_pton
_AF_INET6 = socket.AF_INET6


def _v6_value(addr: str) -> int:
    """Integer value of an IPv6 address text, with :mod:`ipaddress` semantics.

    Forms without a dot go through ``inet_pton`` first (about 30x faster; on the
    hex-and-colon alphabet the two agree, a unit test fuzzes it). Embedded dotted IPv4,
    and anything ``inet_pton`` refuses outside that alphabet, is left to :mod:`ipaddress`.
    """
    if "." not in addr:
        try:
            return int.from_bytes(_inet_pton(_AF_INET6, addr), "big")
        except OSError:
            if _HEX_COLON.issuperset(addr):
                raise Rejected(R_BAD_V6) from None
    try:
        return int(ipaddress.IPv6Address(addr))
    except ValueError:
        raise Rejected(R_BAD_V6) from None


def parse_ip(text: str) -> tuple[int, int, int]:
    """``(version, start, end)`` of one address or CIDR, or raise :class:`Rejected`.

    This is the reference definition; the vectorised fast path must agree with it.
    """
    addr, slash, plen = text.partition("/")
    if ":" in addr:
        if "%" in addr:
            raise Rejected(R_ZONE)
        value = _v6_value(addr)
        p = _prefix(slash, plen, 128)
        hostmask = (1 << (128 - p)) - 1
        if value & hostmask:
            raise Rejected(R_HOST_BITS)
        if p >= 96 and value >> 32 == 0xFFFF:  # ::ffff:0:0/96, IPv4-mapped
            v4 = value & 0xFFFFFFFF
            return 4, v4, v4 | hostmask
        return 6, value, value | hostmask
    if not addr or not _V4_CHARS.issuperset(addr):
        raise Rejected(R_RANGE_SYNTAX if "-" in addr else R_NOT_IP)
    parts = addr.split(".")
    if len(parts) != 4 or not all(parts):
        raise Rejected(R_BAD_V4)
    if any(len(x) > 1 and x[0] == "0" for x in parts):
        raise Rejected(R_LEADING_ZEROS)
    if any(len(x) > 3 for x in parts):  # > 255 without int(): thousands of digits would raise
        raise Rejected(R_OCTET_RANGE)
    a, b, c, d = (int(x) for x in parts)
    if a > 255 or b > 255 or c > 255 or d > 255:
        raise Rejected(R_OCTET_RANGE)
    value = (a << 24) | (b << 16) | (c << 8) | d
    p = _prefix(slash, plen, 32)
    hostmask = (1 << (32 - p)) - 1
    if value & hostmask:
        raise Rejected(R_HOST_BITS)
    return 4, value, value | hostmask


_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def normalize_domain(text: str) -> str:
    """Lower-case ASCII (IDNA) form of a registrable domain or host name, or raise."""
    d = text.strip()
    if not d or any(ch.isspace() for ch in d) or "/" in d or "@" in d or ":" in d:
        raise Rejected(R_BAD_DOMAIN)
    d = canonical_domain(d)  # the gate's reading: NFKC, dots, zero-width, IDNA (UTS 46)
    if not d.isascii():
        raise Rejected(R_IDNA)
    labels = d.split(".")
    if len(d) > 253 or not all(_LABEL.match(x) for x in labels):
        raise Rejected(R_BAD_DOMAIN)
    if labels[-1].isdigit():
        raise Rejected(R_BAD_DOMAIN)  # an IP-like string is not a domain
    from handrail import suffixes  # imported lazily: IP-only feeds never pay for the list

    ext = suffixes.extractor()(d, include_psl_private_domains=False)
    if not ext.suffix or ext.suffix in suffixes.RESERVED_TLDS:
        raise Rejected(R_NO_SUFFIX)
    if not ext.domain or suffixes.suffix_section(d):  # co.uk, or a platform's github.io
        raise Rejected(R_SUFFIX_ONLY)
    return d


def _url_host(host: str) -> str | None:
    """The feed rules for a URL host: one strict address (no leading zeros, IPv4-mapped
    read as IPv4) or a registrable domain; None refuses."""
    if host[0].isdigit() and _V4_CHARS.issuperset(host) or ":" in host:
        try:
            version, start, end = parse_ip(host)
        except Rejected:
            return None
        if start != end:
            return None
        return str(ipaddress.ip_address(start) if version == 4 else ipaddress.IPv6Address(start))
    try:
        return normalize_domain(host)
    except Rejected:
        return None


_URL_REASONS = {"url": R_BAD_URL, "scheme": R_URL_SCHEME, "host": R_URL_HOST}


def normalize_url(text: str) -> str:
    """Canonical text of an http(s)/ftp URL, or raise. The URL is never fetched.

    The one URL normaliser (:func:`handrail.gate.canon.canonical_url`, shared with the
    phishing runbook) with the feed's host rule; fragments are dropped (never sent).
    """
    try:
        return canonical_url(text, _url_host, keep_fragment=False)
    except UrlError as exc:
        raise Rejected(_URL_REASONS[exc.reason]) from None


# counting --------------------------------------------------------------------------
def _shown(text: str) -> str:
    """At most 200 characters of feed text in a report or an error: a feed decides its own
    line lengths, and reports and errors travel in workflow histories."""
    return text[:200]


class _Tally:
    """Exact counts per reason; at most ``cap`` examples kept per reason."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.rejects: Counter[str] = Counter()
        self.unsupported: Counter[str] = Counter()
        self.examples: list[RejectExample] = []
        self.accepted = 0

    def reject(self, reason: str, text: str, line: int | None = None,
               ref: str | None = None) -> None:
        self.rejects[reason] += 1
        if self.rejects[reason] <= self.cap:
            self.examples.append(RejectExample(line=line, ref=_shown(ref) if ref else ref, text=_shown(text),
                                               reason=reason))

    def unsupported_item(self, kind: str) -> None:
        self.unsupported[kind] += 1


class _Collector:
    """Accepted entries of every family, before de-duplication."""

    def __init__(self) -> None:
        self.v4_start: list[np.ndarray] = []
        self.v4_end: list[np.ndarray] = []
        self.v4_single: list[tuple[int, int]] = []
        self.v6: list[tuple[int, int]] = []
        self.domains: list[str] = []
        self.urls: list[str] = []

    def ip(self, version: int, start: int, end: int) -> None:
        if version == 4:
            self.v4_single.append((start, end))
        else:
            self.v6.append((start, end))

    def build(self) -> IndicatorSet:
        s = self.v4_start + [np.fromiter((a for a, _ in self.v4_single), np.int64,
                                         len(self.v4_single))]
        e = self.v4_end + [np.fromiter((b for _, b in self.v4_single), np.int64,
                                       len(self.v4_single))]
        return IndicatorSet.build(np.concatenate(s), np.concatenate(e), self.v6,
                                  self.domains, self.urls)


# vectorised text parsing -------------------------------------------------------------
_WS = np.zeros(256, dtype=bool)
for _c in b" \t\r\x0b\x0c":
    _WS[_c] = True
_BOM = b"\xef\xbb\xbf"


def _line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = buf.size
    nl = np.flatnonzero(buf == 10)
    starts = np.empty(nl.size + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl + 1
    ends = np.empty(nl.size + 1, dtype=np.int64)
    ends[:-1] = nl
    ends[-1] = n
    if starts[-1] == n:  # trailing newline (or empty input): no final line
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


def _field(buf: np.ndarray, fs: np.ndarray, fe: np.ndarray, width: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Decimal value of digit-only fields [fs, fe) of 1..width chars, and validity
    (length in range, no leading zero)."""
    last = buf.size - 1
    ln = fe - fs
    first = buf[np.minimum(fs, last)].astype(np.int32) - 48
    value = first
    for k in range(1, width):
        nxt = buf[np.minimum(fs + k, last)].astype(np.int32) - 48
        value = np.where(ln > k, value * 10 + nxt, value)
    ok = (ln >= 1) & (ln <= width) & ~((ln > 1) & (first == 0))
    return value, ok


_MAX_FAST_LEN = len("255.255.255.255/32")


def _fast_ipv4(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """Vectorised parse of plain IPv4 lines.

    Returns ``(fast, v4_start, v4_end, slow)``: indexes of lines accepted here with their
    intervals, and indexes of non-blank lines for the reference parser.

    Per-line character-class counts come from one ``np.add.reduceat`` over packed
    weights (other=1, '.'=32, '/'=1024); they are exact for lines of at most 18
    characters, the only ones this path may accept.
    """
    n = buf.size
    s = starts.copy()
    e = ends.copy()
    hashes = np.flatnonzero(buf == 35)  # '#': the rest of the line is a comment
    if hashes.size:
        k = np.searchsorted(hashes, s)
        hp = hashes[np.minimum(k, hashes.size - 1)]
        e = np.where((k < hashes.size) & (hp < e), hp, e)
    for _ in range(4):  # trim trailing / leading ASCII blanks (CR of CRLF included)
        m = (e > s) & _WS[buf[np.maximum(e - 1, 0)]]
        if not m.any():
            break
        e -= m
    for _ in range(4):
        m = (e > s) & _WS[buf[np.minimum(s, n - 1)]]
        if not m.any():
            break
        s += m
    nonblank = e > s
    weights = np.zeros(n + 1, dtype=np.uint16)
    shifted = buf - np.uint8(46)  # '.'->0, '/'->1, digits->2..11, all else wraps above 11
    np.add(weights[:n], (shifted > 11) & (buf != 10), out=weights[:n])
    weights[:n] += (shifted == 0) * np.uint16(32)
    weights[:n] += (shifted == 1) * np.uint16(1024)
    del shifted
    bounds = np.empty(2 * s.size, dtype=np.int64)
    bounds[0::2] = s
    bounds[1::2] = e
    packed = np.add.reduceat(weights, bounds)[0::2] if s.size else weights[:0]
    del weights, bounds
    short = nonblank & (e - s <= _MAX_FAST_LEN)
    cand = np.flatnonzero(short & ((packed & 31) == 0) & (((packed >> 5) & 31) == 3)
                          & ((packed >> 10) <= 1))
    has_slash = (packed[cand] >> 10) == 1
    del packed
    sc, ec = s[cand], e[cand]
    dots = np.flatnonzero(buf == 46)
    d = np.searchsorted(dots, sc)
    d1, d2, d3 = dots[d], dots[d + 1], dots[d + 2]
    del dots
    slashes = np.flatnonzero(buf == 47)
    if slashes.size:
        si = np.searchsorted(slashes, sc)
        sp = np.where(has_slash, slashes[np.minimum(si, slashes.size - 1)], ec)
    else:
        sp = ec
    v0, ok = _field(buf, sc, d1, 3)
    v1, ok1 = _field(buf, d1 + 1, d2, 3)
    v2, ok2 = _field(buf, d2 + 1, d3, 3)
    v3, ok3 = _field(buf, d3 + 1, sp, 3)
    v4, ok4 = _field(buf, sp + 1, ec, 2)
    plen = np.where(has_slash, v4, 32)
    ok &= ok1 & ok2 & ok3 & (ok4 | ~has_slash) & (sp > d3)
    ok &= (v0 <= 255) & (v1 <= 255) & (v2 <= 255) & (v3 <= 255) & (plen <= 32)
    addr = ((v0.astype(np.int64) << 24) | (v1.astype(np.int64) << 16)
            | (v2.astype(np.int64) << 8) | v3)
    hostmask = (np.int64(1) << (32 - np.clip(plen, 0, 32)).astype(np.int64)) - 1
    ok &= (addr & hostmask) == 0
    fast = cand[ok]
    slow_mask = nonblank.copy()
    slow_mask[fast] = False
    return fast, addr[ok], (addr | hostmask)[ok], np.flatnonzero(slow_mask)


def _parse_text_lines(data: bytes, tally: _Tally, out: _Collector,
                      line_numbers: np.ndarray | None = None) -> None:
    """Parse newline-separated addresses/CIDRs with ``#`` comments into ``out``."""
    if not data:
        return
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends = _line_bounds(buf)
    fast, v4s, v4e, slow = _fast_ipv4(buf, starts, ends)
    out.v4_start.append(v4s)
    out.v4_end.append(v4e)
    tally.accepted += int(fast.size)
    lines = (line_numbers[slow] if line_numbers is not None else slow + 1).tolist()
    v6 = out.v6
    accepted = 0
    for line, a, b in zip(lines, starts[slow].tolist(), ends[slow].tolist(), strict=True):
        raw = data[a:b]
        if b"#" in raw:
            raw = raw.split(b"#", 1)[0]
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            tally.reject(R_ENCODING, raw.decode("utf-8", "replace").strip(), line)
            continue
        if not text:
            continue
        try:
            version, lo, hi = parse_ip(text)
        except Rejected as r:
            tally.reject(r.reason, text, line)
            continue
        if version == 6:
            v6.append((lo, hi))
        else:
            out.v4_single.append((lo, hi))
        accepted += 1
    tally.accepted += accepted


# formats ---------------------------------------------------------------------------
def _parse_ipset(data: bytes, tally: _Tally, out: _Collector) -> None:
    _parse_text_lines(data, tally, out)


_IP_TYPES = {"ip", "ipv4", "ipv6", "ip-dst", "ip-src", "ip_address", "ipaddress", "ip-addr",
             "ipv4-addr", "ipv6-addr", "cidr", "net", "network", "netblock", "subnet"}
_DOMAIN_TYPES = {"domain", "domain-name", "domain_name", "hostname", "host", "fqdn"}
_URL_TYPES = {"url", "uri", "link"}
_SIMPLE_IP = frozenset("0123456789./")


def _kind_of(value: str, declared: str) -> str:
    t = declared.strip().lower()
    if t in _IP_TYPES:
        return "ip"
    if t in _DOMAIN_TYPES:
        return "domain"
    if t in _URL_TYPES:
        return "url"
    if t:
        return t  # unsupported observable type, counted under its own name
    if "://" in value:
        return "url"
    if ":" in value or _SIMPLE_IP.issuperset(value):
        return "ip"
    return "domain"


def _csv_rows(reader):
    """The reader's rows; a row the csv module cannot read (a field over its 128 KiB limit)
    ends the feed with :class:`FeedFormatError`, because the rows after it cannot be told
    apart from the inside of that field."""
    try:
        yield from reader
    except csv.Error as exc:
        raise FeedFormatError(f"csv feed cannot be read at line {reader.line_num}: {exc}") from None


def _parse_csv(data: bytes, columns: Mapping[str, str] | None, tally: _Tally,
               out: _Collector) -> None:
    if not columns or "indicator" not in columns:
        raise FeedFormatError('csv feeds need columns={"indicator": <column>, ...}')
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FeedFormatError(f"csv feed is not UTF-8: {exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = _csv_rows(reader)
    header = next(rows, None)
    if header is None:
        return
    names = [h.strip() for h in header]
    try:
        ind_col = names.index(columns["indicator"])
        type_col = names.index(columns["type"]) if columns.get("type") else None
    except ValueError:
        raise FeedFormatError(f"csv header {_shown(repr(names))} lacks a mapped column "
                              f"{dict(columns)!r}") from None
    batch_values: list[str] = []
    batch_lines: list[int] = []
    for row in rows:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if row[0].lstrip().startswith("#"):
            continue
        if ind_col >= len(row) or (type_col is not None and type_col >= len(row)):
            tally.reject(R_MISSING_COLUMN, ",".join(row), line)
            continue
        value = row[ind_col].strip()
        if not value:
            tally.reject(R_EMPTY, ",".join(row), line)
            continue
        kind = _kind_of(value, row[type_col] if type_col is not None else "")
        try:
            if kind == "ip":
                if _SIMPLE_IP.issuperset(value):
                    batch_values.append(value)  # vectorised below
                    batch_lines.append(line)
                    continue
                out.ip(*parse_ip(value))
            elif kind == "domain":
                out.domains.append(normalize_domain(value))
            elif kind == "url":
                out.urls.append(normalize_url(value))
            else:
                tally.unsupported_item(kind)
                continue
        except Rejected as r:
            tally.reject(r.reason, value, line)
            continue
        tally.accepted += 1
    if batch_values:
        _parse_text_lines("\n".join(batch_values).encode("ascii"), tally, out,
                          np.asarray(batch_lines, dtype=np.int64))


# The look-behind starts a match only where an object name starts: without it a long run
# of letters was scanned once per position (quadratic; 40 s for 80 KB of "a").
_STIX_CMP = re.compile(
    r"(?P<path>(?<![a-z0-9-])(?P<obj>[a-z0-9][a-z0-9-]*):(?:[A-Za-z0-9_\-.\[\]*]|'[^']*')+)\s*"
    r"(?P<op>NOT\s+(?:=|!=|MATCHES|LIKE|IN|ISSUBSET|ISSUPERSET)|=|!=|<=|>=|<|>|MATCHES|LIKE"
    r"|IN|ISSUBSET|ISSUPERSET)\s*"
    r"(?P<val>'(?:[^'\\]|\\.)*'|\([^)]*\)|[^\s\])]+)"
)
_STIX_QUALIFIERS = frozenset({"WITHIN", "REPEATS", "START", "STOP", "FOLLOWEDBY"})
_STIX_UNESCAPE = re.compile(r"\\(.)")
_STIX_BRACKETS = str.maketrans("[]()", "    ")


def _stix_value(val: str) -> str | None:
    if len(val) >= 2 and val[0] == "'" and val[-1] == "'":
        return _STIX_UNESCAPE.sub(r"\1", val[1:-1])
    return None


# A value in parentheses is looked for up to the next ')': with none, every comparison
# start scans to the end of the pattern, so reading one costs up to length squared.
# The cap bounds that to a constant per character: 16 KiB holds a URL as long as a web
# server's request line (8 KiB) twice over. A longer pattern is counted unparseable.
MAX_PATTERN_CHARS = 16 * 1024


def _split_pattern(pattern: str) -> tuple[list[re.Match], list[str]]:
    """The comparisons of a pattern and the words between them (brackets, parentheses and
    whitespace removed), from one pass of the regex."""
    comparisons, gaps, at = [], [], 0
    for m in _STIX_CMP.finditer(pattern):
        comparisons.append(m)
        gaps.append(pattern[at:m.start()])
        at = m.end()
    gaps.append(pattern[at:])
    return comparisons, " ".join(gaps).translate(_STIX_BRACKETS).split()


def _parse_stix_pattern(pattern: str, ref: str | None, tally: _Tally, out: _Collector) -> None:
    if len(pattern) > MAX_PATTERN_CHARS:
        tally.reject(R_PATTERN, pattern, ref=ref)
        return
    comparisons, words = _split_pattern(pattern)
    if comparisons and _STIX_QUALIFIERS.intersection(words):
        tally.unsupported_item("qualified or sequenced pattern")  # WITHIN, FOLLOWEDBY, ...
        return
    if not comparisons or len(words) != len(comparisons) - 1 or not {"OR", "AND"}.issuperset(
            words):
        tally.reject(R_PATTERN, pattern, ref=ref)
        return
    if "AND" in words:  # all of several observables at once: no single blockable value
        tally.unsupported_item("compound AND pattern")
        return
    for m in comparisons:
        obj, path, op = m["obj"], m["path"], " ".join(m["op"].split())
        value = _stix_value(m["val"])
        prop = path.split(":", 1)[1]
        supported = prop == "value" and value is not None and (
            op == "=" or (op == "ISSUBSET" and obj in ("ipv4-addr", "ipv6-addr")))
        if obj not in ("ipv4-addr", "ipv6-addr", "domain-name", "url") or not supported:
            tally.unsupported_item(obj if obj not in ("ipv4-addr", "ipv6-addr", "domain-name",
                                                      "url") else f"{obj} {prop} {op}")
            continue
        assert value is not None
        try:
            if obj in ("ipv4-addr", "ipv6-addr"):
                value = value.strip()
                if (":" in value) != (obj == "ipv6-addr"):
                    raise Rejected(R_FAMILY)
                out.ip(*parse_ip(value))
            elif obj == "domain-name":
                out.domains.append(normalize_domain(value))
            else:
                out.urls.append(normalize_url(value))
        except Rejected as r:
            tally.reject(r.reason, value, ref=ref)
            continue
        tally.accepted += 1


def _json_document(data: bytes):
    """The feed as JSON, or :class:`FeedFormatError`: bad UTF-8 or syntax, nesting deeper
    than the decoder's recursion limit (RecursionError), or a number of more digits than
    Python converts (a ValueError that is not a JSONDecodeError)."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedFormatError(f"not a STIX JSON document: {exc}") from None
    except RecursionError:
        raise FeedFormatError("not a STIX JSON document: it is nested too deeply to read") from None
    except ValueError:
        raise FeedFormatError("not a STIX JSON document: a number in it has too many digits to read") from None


def _stix_objects(doc) -> list:
    """The objects of a bundle, a list of objects or one object; anything else is not STIX."""
    if isinstance(doc, dict) and doc.get("type") == "bundle":
        objects = doc.get("objects") or []
        if not isinstance(objects, list):
            raise FeedFormatError("not a STIX bundle: its objects are not a list")
        return objects
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        return [doc]
    raise FeedFormatError("not a STIX bundle, object or list of objects")


def _json_type(value) -> str:
    """The JSON type of a value, for a reject example (never its text: it may be huge or deep)."""
    return "text" if isinstance(value, str) else "absent" if value is None else {
        dict: "an object", list: "a list", bool: "a boolean"}.get(type(value), "a number")


def _parse_stix(data: bytes, tally: _Tally, out: _Collector) -> None:
    for obj in _stix_objects(_json_document(data)):
        if not isinstance(obj, dict) or obj.get("type") != "indicator":
            continue
        ref = obj.get("id")
        ptype = obj.get("pattern_type", "stix")
        if not isinstance(ref, str | None) or not isinstance(ptype, str):
            tally.reject(R_STIX_OBJECT, f"id is {_json_type(ref)}, pattern_type is {_json_type(ptype)}")
            continue
        if obj.get("revoked") is True:
            tally.unsupported_item("revoked indicator")
            continue
        if ptype != "stix":
            tally.unsupported_item(f"pattern_type {ptype}")
            continue
        pattern = obj.get("pattern")
        if not isinstance(pattern, str) or not pattern.strip():
            tally.reject(R_PATTERN, pattern if isinstance(pattern, str) else f"pattern is {_json_type(pattern)}",
                         ref=ref)
            continue
        _parse_stix_pattern(pattern, ref, tally, out)


# entry point -----------------------------------------------------------------------
def content_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_feed(data: bytes, *, feed: str, format: FeedFormat = "ipset",
               columns: Mapping[str, str] | None = None,
               max_examples: int = MAX_EXAMPLES_PER_REASON) -> ParsedFeed:
    """Normalise one feed. Bad items are counted with reasons; a feed that cannot be read
    at all in ``format`` raises :class:`FeedFormatError`."""
    tally = _Tally(max_examples)
    out = _Collector()
    body = data.removeprefix(_BOM)
    if format in ("ipset", "netset"):
        _parse_ipset(body, tally, out)
    elif format == "csv":
        _parse_csv(data, columns, tally, out)
    elif format == "stix":
        _parse_stix(data, tally, out)
    else:  # pragma: no cover - guarded by the Literal type
        raise FeedFormatError(f"unknown feed format {format!r}")
    indicators = out.build()
    counts = indicators.counts()
    report = FeedParse(
        feed=feed,
        format=format,
        content_sha256=content_sha256(data),
        parser_version=PARSER_VERSION,
        accepted=tally.accepted,
        rejected=sum(tally.rejects.values()),
        unsupported=sum(tally.unsupported.values()),
        rejects_by_reason=dict(sorted(tally.rejects.items())),
        unsupported_by_type=dict(sorted(tally.unsupported.items())),
        examples=sorted(tally.examples, key=lambda x: (x.line or 0)),
        duplicates=tally.accepted - len(indicators),
        **counts,
    )
    return ParsedFeed(report, indicators)
