"""One canonical model of addresses, networks and domain names for every guardrail.

Why this exists: an attacker who wants the CRM blocked writes it in a form the check does
not compare — ``::ffff:161.71.5.5`` (IPv4-mapped), ``64:ff9b::a147:505`` (NAT64),
``2002:a147:505::/48`` (6to4), a Teredo address, ``ｇｏｏｇｌｅ.com`` (full-width),
``google。com`` (ideographic full stop), ``google.com`` followed by a zero-width space, or
two targets on two lines. Every guardrail (the gate's, the intel sync's, the phishing
runbook's, the lab's strict parser) asks this module, so they all give the same answer.

* **Addresses.** An IPv6 address or network that embeds IPv4 space — IPv4-mapped
  ``::ffff:0:0/96``, IPv4-compatible ``::/96``, NAT64 ``64:ff9b::/96`` and the local-use
  ``64:ff9b:1::/48``, 6to4 ``2002::/16`` and Teredo ``2001::/32`` (server and client) — is
  checked as the IPv4 intervals it carries (:func:`ipv4_views`). A v6 network covering an
  embedding prefix therefore covers the IPv4 it embeds: ``::ffff:0:0/96`` is all of IPv4.
* **Overlap in both families** (:func:`overlaps`): two networks collide when they overlap
  directly, or when an IPv4 view of one overlaps the other's IPv4 views.
* **Fail closed** (:func:`parse_one_network`): a target is one address or one network,
  with no white space, control character, zone index or second value, else it raises
  :class:`TargetError` with a one-sentence reason.
* **Domains** (:func:`canonical_domain`): NFKC, ideographic and full-width dots mapped to
  ``.``, zero-width and other format characters removed, lower case, trailing dot removed,
  then IDNA 2008 with UTS 46 mapping (the ``idna`` package) to the ASCII form.
* **One spelling for a web target** (:func:`read_web_target`): a name or URL handed to a
  tool must already be in its one canonical form. Browsers and proxies read
  ``http://0xa1.0x47.5.5./``, ``http:\\161.71.5.5``, ``https://sales%66orce.com/`` or
  ``https:////salesforce.com`` as the protected address or the allowlisted name; Python's
  ``urlsplit`` reads some of them otherwise. Rather than imitate every reader, any spelling
  that is not the canonical one is refused, and the refusal names the canonical spelling.

Pure and deterministic (no I/O, no clock): safe in workflow code.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import quote, urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Interval = tuple[int, int]  # inclusive [start, end] of IPv4 integers

V4_ALL: Interval = (0, 0xFFFFFFFF)
_LOW32 = 0xFFFFFFFF


class TargetError(ValueError):
    """A target is not exactly one address or network; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- parsing --------------------------------------------------------------------------

_MAX_TARGET = 200


def _shown(text: str) -> str:
    return repr(text[:60] + ("…" if len(text) > 60 else ""))


def parse_one_network(text: str) -> Network:
    """Exactly one IPv4/IPv6 address (as a /32 or /128) or network, or raise TargetError.

    Host bits are allowed and widened (``161.71.5.5/16`` is checked as ``161.71.0.0/16``):
    for a guardrail, reading a target wider is the safe direction.
    """
    if not isinstance(text, str) or not text:
        raise TargetError("the target is empty")
    if len(text) > _MAX_TARGET:
        raise TargetError(f"the target is {len(text)} characters long, not one address or network")
    if any(ch.isspace() or unicodedata.category(ch)[0] in "CZ" for ch in text):
        raise TargetError(f"the target {_shown(text)} holds white space or control characters: "
                          "it is not exactly one address or network")
    if not text.isascii():
        raise TargetError(f"the target {_shown(text)} holds non-ASCII characters")
    if "%" in text:
        raise TargetError(f"the target {_shown(text)} has an IPv6 zone index")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise TargetError(f"the target {_shown(text)} is not one IP address or network") from None


def legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a browser reads from a legacy IPv4 host (``inet_aton`` rules):
    ``2705786117``, ``0xa1470505``, ``0241.0107.5.5``, ``161.71.1285``. None otherwise."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or len(host) > 64:
        return None
    values = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part[0] == "0":
                values.append(int(part[1:], 8))
            else:
                values.append(int(part, 10) if part.isdigit() else -1)
        except ValueError:
            return None
    if any(v < 0 for v in values) or any(v > 255 for v in values[:-1]):
        return None
    last_bits = 8 * (5 - len(values))
    if values[-1] >= 1 << last_bits:
        return None
    value = 0
    for v in values[:-1]:
        value = (value << 8) | v
    return ipaddress.IPv4Address((value << last_bits) | values[-1])


def looks_like_ip(text: str) -> bool:
    """Whether a target is written with address characters only (digits, hex, ``.:/``),
    i.e. meant as an address: such a target must then parse as exactly one."""
    core = text.strip()
    if not core:
        return False
    has_digit_or_colon = any(ch.isdigit() or ch == ":" for ch in core)
    return has_digit_or_colon and all(ch in "0123456789abcdefABCDEF.:/%" for ch in core) and (
        ":" in core or core.replace(".", "").replace("/", "").isdigit())


# --- IPv4 embedded in IPv6 ------------------------------------------------------------

def _net(cidr: str) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network(cidr)


# (prefix, label, how to read the IPv4 out of the 128-bit value)
_LOW32_PREFIXES = (
    (_net("::ffff:0:0/96"), "IPv4-mapped"),
    (_net("::/96"), "IPv4-compatible"),
    (_net("64:ff9b::/96"), "NAT64"),
)
_NAT64_LOCAL = _net("64:ff9b:1::/48")
_6TO4 = _net("2002::/16")
_TEREDO = _net("2001::/32")


EMBEDDING_RANGES: tuple[tuple[int, int], ...] = tuple(
    (int(p.network_address), int(p.broadcast_address))
    for p in (*(n for n, _ in _LOW32_PREFIXES), _NAT64_LOCAL, _6TO4, _TEREDO))


def _clip(start: int, end: int, prefix: ipaddress.IPv6Network) -> Interval | None:
    lo = max(start, int(prefix.network_address))
    hi = min(end, int(prefix.broadcast_address))
    return (lo, hi) if lo <= hi else None


def _field(lo: int, hi: int, shift: int) -> Interval:
    """IPv4 values in bits [shift, shift+32) over a contiguous 128-bit range: contiguous if
    the range stays within one value of the bits above, else every IPv4 address."""
    if (lo >> (shift + 32)) != (hi >> (shift + 32)):
        return V4_ALL
    return ((lo >> shift) & _LOW32, (hi >> shift) & _LOW32)


def _nat64_48(lo: int, hi: int) -> Interval:
    """RFC 6052 /48 layout: IPv4 bits in 48..63 and 72..87, the "u" octet between.
    Contiguous only while the range keeps its top 72 bits; wider reads as all of IPv4."""
    if (lo >> 56) != (hi >> 56):
        return V4_ALL

    def v4(x: int) -> int:
        return (((x >> 64) & 0xFFFF) << 16) | ((x >> 40) & 0xFFFF)

    return (v4(lo), v4(hi))


def ipv4_views(start: int, end: int) -> list[tuple[str, Interval]]:
    """The IPv4 intervals an IPv6 range ``[start, end]`` carries, labelled by embedding."""
    views: list[tuple[str, Interval]] = []
    for prefix, label in _LOW32_PREFIXES:
        part = _clip(start, end, prefix)
        if part:
            views.append((label, _field(part[0], part[1], 0)))
    part = _clip(start, end, _NAT64_LOCAL)
    if part:  # operators pick the length inside it: read both the /96 and the /48 layout
        lo, hi = part
        views.append(("NAT64 (local-use)", _field(lo, hi, 0)))
        views.append(("NAT64 (local-use /48)", _nat64_48(lo, hi)))
    part = _clip(start, end, _6TO4)
    if part:
        views.append(("6to4", _field(part[0], part[1], 80)))
    part = _clip(start, end, _TEREDO)
    if part:
        lo, hi = part
        views.append(("Teredo server", _field(lo, hi, 64)))
        if (lo >> 32) != (hi >> 32):
            views.append(("Teredo client", V4_ALL))
        else:  # the client address is stored inverted
            views.append(("Teredo client", ((~hi) & _LOW32, (~lo) & _LOW32)))
    return views


def v4_intervals(net: Network) -> list[tuple[str, Interval]]:
    """Every IPv4 interval a network stands for: itself (IPv4) or its embedded views."""
    if net.version == 4:
        return [("IPv4", (int(net.network_address), int(net.broadcast_address)))]
    return ipv4_views(int(net.network_address), int(net.broadcast_address))


def _interval_text(iv: Interval) -> str:
    start, end = iv
    nets = list(ipaddress.summarize_address_range(ipaddress.IPv4Address(start), ipaddress.IPv4Address(end)))
    return str(nets[0]) if len(nets) == 1 else f"{ipaddress.IPv4Address(start)}-{ipaddress.IPv4Address(end)}"


def overlaps(a: Network, b: Network) -> str | None:
    """None when ``a`` and ``b`` share no address in any family; else how they meet
    (``"directly"`` or, e.g., ``"as NAT64 161.71.0.0/16"``)."""
    if a.version == b.version and a.overlaps(b):
        return "directly"
    b_views = v4_intervals(b)
    for label, (s, e) in v4_intervals(a):
        for _, (bs, be) in b_views:
            if s <= be and bs <= e:
                return "directly" if label == "IPv4" else f"as {label} {_interval_text((s, e))}"
    return None


def contains(outer: Network, inner: Network) -> bool:
    """``inner`` lies inside ``outer`` (in its own family, or through every IPv4 view)."""
    if outer.version == inner.version:
        return inner.subnet_of(outer)  # type: ignore[arg-type]
    views = v4_intervals(inner)
    outer_views = v4_intervals(outer)
    return bool(views) and all(any(os <= s and e <= oe for _, (os, oe) in outer_views)
                               for _, (s, e) in views)


def first_overlap(net: Network, networks: Iterable[tuple[str, Network]]) -> tuple[str, Network, str] | None:
    """The first ``(name, network, how)`` in ``networks`` that ``net`` overlaps."""
    for name, other in networks:
        how = overlaps(net, other)
        if how:
            return name, other, how
    return None


# --- domains --------------------------------------------------------------------------

# Dots that UTS 46 or a human reads as a full stop.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": ".", "\u2024": ".", "\ufe52": "."})


def _strip_format(text: str) -> str:
    """Drop zero-width and other format characters (Cf) and controls, which render as nothing.
    Printable ASCII has neither: returned as is (a feed's names, checked one by one)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc"))


def canonical_domain(text: str) -> str:
    """The one comparable form of a domain name: ASCII (IDNA 2008, UTS 46), lower case.

    Never raises: a name IDNA refuses is still returned NFKC-mapped, lower case and
    stripped, so two spellings of the same invalid name still compare equal.
    """
    name = _strip_format(unicodedata.normalize("NFKC", text)).translate(_DOTS).strip().lower()
    while name.endswith("."):
        name = name[:-1]
    if name.isascii():
        return name
    import idna

    try:
        return idna.encode(name, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return name


def target_name(target: str) -> str:
    """The name a change is about, canonical: a URL's host (a page on the web proxy), else
    the target itself (a domain). Userinfo is not the host: ``https://corp.example@x.example/``
    is about x.example."""
    if "://" not in target:
        return canonical_domain(target)
    try:
        host = urlsplit(target.strip()).hostname or ""
    except ValueError:
        host = ""
    return canonical_domain(host)


def domain_within(name: str, listed: str) -> bool:
    """``name`` is ``listed`` or under it (``a.corp.example`` is within ``corp.example``),
    both compared in canonical form."""
    n, entry = canonical_domain(name), canonical_domain(listed)
    return bool(entry) and (n == entry or n.endswith("." + entry))


def canonical_names(listed: Iterable[str]) -> frozenset[str]:
    """A list of names (an allowlist) in canonical form, for :func:`listed_entry`."""
    return frozenset(filter(None, map(canonical_domain, listed)))


def listed_entry(target: str, listed: frozenset[str]) -> str | None:
    """The entry of ``listed`` (:func:`canonical_names`) that the name ``target`` is about
    (:func:`target_name`: a URL's host, else the domain) is or is under, or None.

    :func:`domain_within` against a whole list at once, one set lookup per label, so a
    set of many members is checked in time linear in its size, not times the list."""
    name = target_name(target)
    at = 0
    while name:
        if name[at:] in listed:
            return name[at:]
        at = name.find(".", at) + 1
        if at == 0:
            return None
    return None


# --- URLs -----------------------------------------------------------------------------

URL_SCHEMES = {"http": 80, "https": 443, "ftp": 21}
_URL_SAFE = "/%:@!$&'()*+,;=-._~?#[]"
_PCT_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")


class UrlError(ValueError):
    """Not a URL Handrail accepts; ``reason`` is ``"url"``, ``"scheme"`` or ``"host"``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _quote(part: str) -> str:
    """Percent-encode what is unsafe; every escape in upper case (RFC 3986 section 6.2.2.1)."""
    return _PCT_ESCAPE.sub(lambda m: m.group(0).upper(), quote(part, safe=_URL_SAFE))


def canonical_url(text: str, host_rule, *, keep_fragment: bool) -> str:
    """The one canonical text of an http(s)/ftp URL, or raise :class:`UrlError`.

    Scheme and host lower case, host through ``host_rule`` (a function returning the
    normalised host — IP literal without brackets or IDNA name — or None to refuse), default
    port dropped, empty path ``/``, unsafe characters percent-encoded with upper-case
    escapes, userinfo kept (encoded). The fragment never reaches a server: kept only when
    asked (evidence), dropped for blocking. Nothing is fetched or resolved.
    """
    u = text.strip()
    if not u or any(ch.isspace() or ord(ch) < 0x20 or ch == "\x7f" for ch in u):
        raise UrlError("url")
    try:
        parts = urlsplit(u)
        port = parts.port
        raw_host = parts.hostname
    except ValueError:
        raise UrlError("url") from None
    scheme = parts.scheme.lower()
    if not scheme or "//" not in u:
        raise UrlError("url")
    if scheme not in URL_SCHEMES:
        raise UrlError("scheme")
    if not raw_host:
        raise UrlError("url")
    host = host_rule(raw_host)
    if not host:
        raise UrlError("host")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != URL_SCHEMES[scheme]:
        netloc = f"{netloc}:{port}"
    if "@" in parts.netloc:
        netloc = f"{_quote(parts.netloc.rpartition('@')[0])}@{netloc}"
    url = f"{scheme}://{netloc}{_quote(parts.path) or '/'}"
    if parts.query:
        url += "?" + _quote(parts.query)
    if keep_fragment and parts.fragment:
        url += "#" + _quote(parts.fragment)
    return url


# --- web targets: one spelling ------------------------------------------------------------

_PLAIN_URL_START = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/%]+(/|$)")
_NAME_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_HEX_NUMBER = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class WebTarget(NamedTuple):
    """A web target read strictly: its host (a name, or an address in its compressed form),
    that host as a network when it is an address, and whether the target was a URL."""

    host: str
    network: Network | None
    url: bool


def exact_host(host: str) -> str | None:
    """A host in its one canonical spelling, or None.

    An address: dotted-decimal IPv4 without leading zeros, or IPv6 (compressed).
    A name: ASCII (IDNA A-labels), lower case, at least two labels of letters, digits,
    ``-`` and ``_``, no empty label (no trailing dot), at most 253 characters, and a last
    label that is not a number (WHATWG reads ``161.71.0x5.5`` as an IPv4 address).
    """
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.split(".")
    if (len(host) > 253 or len(labels) < 2 or not host.isascii()
            or not all(_NAME_LABEL.match(label) for label in labels) or _HEX_NUMBER.match(labels[-1])):
        return None
    return host


def _spelled(target: str, canonical: str | None, what: str) -> TargetError:
    hint = f"; write it as {canonical!r}" if canonical else ""
    return TargetError(f"the target {_shown(target)} is not {what} in its one canonical spelling{hint}: "
                       "a tool or a browser could read it as another host than the guardrails do")


def looks_like_url(target: str) -> bool:
    """Whether a target has a character only a URL (or a misspelt one) has: it must then be
    read as a URL, strictly, and never as a bare name."""
    return any(ch in target for ch in ":/\\@?#%")


def read_web_target(target: str) -> WebTarget:
    """A domain, address or http(s)/ftp URL target read strictly, or raise :class:`TargetError`.

    The target must be exactly its canonical form (:func:`canonical_url` with
    :func:`exact_host`, no fragment, no user name): any other spelling could be read as a
    different host by the tool than by the guardrails, so it is refused, naming the
    canonical spelling where there is one.
    """
    if not isinstance(target, str) or not target:
        raise TargetError("the target is empty")
    if len(target) > 2048:
        raise TargetError(f"the target is {len(target)} characters long, not one name or URL")
    if not looks_like_url(target):
        host = exact_host(target)
        if host != target:
            raise _spelled(target, exact_host(canonical_domain(target)), "a host name")
        return WebTarget(host, _as_network(host), False)
    try:
        canonical = canonical_url(target, exact_host, keep_fragment=False)
    except UrlError:
        canonical = None
    if canonical is None or canonical != target or "@" in urlsplit(canonical).netloc:
        raise _spelled(target, _suggested_url(target), "an http(s)/ftp URL")
    host = urlsplit(canonical).hostname or ""
    return WebTarget(host, _as_network(host), True)


def _as_network(host: str) -> Network | None:
    try:
        return ipaddress.ip_network(host)
    except ValueError:
        return None


def _suggested_url(target: str) -> str | None:
    """The canonical spelling of a URL whose only faults are case, a default port, a
    trailing dot, user name or fragment; None when its host is itself ambiguous."""

    def lenient(host: str) -> str | None:
        return exact_host(canonical_domain(host))

    if "\\" in target or not _PLAIN_URL_START.match(target):
        return None  # a reader-dependent URL: no spelling is safe to suggest
    try:
        url = canonical_url(target, lenient, keep_fragment=False)
    except UrlError:
        return None
    parts = urlsplit(url)
    if "@" in parts.netloc:
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return url
