"""Offline normalisation of network indicators: URLs, host names, domains, IPs.

Indicators found in phishing mail and threat feeds are *data*. Nothing here fetches,
resolves or opens anything: host names are only IDNA-encoded (a pure string
transformation) and matched against the offline Public Suffix List snapshot
(:mod:`handrail.suffixes`, which never downloads a newer list and never writes to disk).

Conventions, so that every module that reuses this one agrees:

* a *host* is lower-case IDNA ASCII (``bücher.example`` -> ``xn--bcher-kva.example``),
  or an IP literal in its compressed form (IPv6 without brackets);
* a host name counts only when it ends in a public suffix. The private section of the
  PSL is included (``evil.web.app`` is its own registrable domain, not ``web.app``), and
  so are the RFC 2606 reserved TLDs ``example``, ``test`` and ``invalid``, which
  documentation and tests use in place of real names;
* a URL is ``http``, ``https`` or ``ftp`` with a valid host; it is normalised to a lower
  scheme, lower IDNA host, no default port, a path of at least ``/``, and non-ASCII or
  space characters in the path, query and fragment percent-encoded;
* defanged text (``hxxp://``, ``[.]``, ``(.)``, ``[dot]``, ``[:]//``) is re-fanged with
  the maintained ``ioc-fanger`` rules. URL spans are then cut with one small regex
  (scheme up to an RFC 3986 appendix C delimiter). ``iocextract`` was tried and
  rejected: it ends a URL at the first non-ASCII character, so IDN hosts such as
  ``http://ðcjŸemœ.example.com/`` were lost, and it runs on through ``<`` and ``>``
  (``https://a.example/x.<https://b.example/>`` came back as one URL).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import idna
from ioc_fanger import fang as _fang

from handrail.gate.canon import UrlError, canonical_domain, canonical_url, legacy_ipv4
from handrail.suffixes import extractor, suffix_section

URL_SCHEMES = frozenset({"http", "https", "ftp"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}

# Top-level domains that are far more often a file extension ("notes.md", "clip.mov",
# "setup.py") than a site. A bare two-label name ending in one of them is not a domain.
FILE_EXTENSION_TLDS = frozenset({"zip", "mov", "md", "py", "one", "mobi", "cab"})

_ASCII_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_PATH_SAFE = "/%:@!$&'()*+,;=-._~?#[]"
_BARE_DOMAIN = re.compile(
    r"(?<![\w.@/:%-])((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63})(?![\w@-]|\.[\w-])"
)
# A URL runs from its scheme to the first character that RFC 3986 (appendix C) says
# delimits URLs in text: white space, <, >, quotes, backquote, braces, pipe, backslash.
_URL_SPAN = re.compile(r"(?i)(?:https?|(?<![a-z])ftp)://[^\s<>\"'`{}|\\^]+")
_TRAILING = frozenset(".,;:!?*")
_CLOSERS = {")": "(", "]": "["}
# Linear time: the look-behind lets a match start only where a run of local-part
# characters starts, so a long run of word characters is scanned once, not once per
# position (the unguarded pattern took 17 s on 80 KB of "x").
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


# ioc-fanger's rules backtrack over runs of brackets and blanks (a 20 KB run of "[" took
# two minutes). No defanging uses more than a few in a row, so runs are cut to a few
# first: each rule then does bounded work per position, linear in the text.
_BRACKET_RUN = re.compile(r"[\[\](){}-]{9,}")
_BLANK_RUN = re.compile(r"[ \t]{9,}")
# What at least one ioc-fanger rule needs to find before it can change anything (one
# alternative per rule family); text without any of these is returned as it is, which
# spares the ~30 substitutions per link that dominated the parse of link-heavy mail.
_MAY_BE_DEFANGED = re.compile(
    r"[\[\](){}\\^]|DOT|AT|ET|ARROBA|h[xA-Z]{2}p|\d,\d|<\.>| @ "
    r"|(?i:dot|punto|punkt|xxxx|:///|:// |: +//|https?/|https? +:)"
)


def fang(text: str) -> str:
    """Undo common defanging (``hxxp``, ``[.]``, ``(.)``, ``[dot]``, ``[:]//``).

    Runs of more than 8 brackets or blanks are cut to 8 first (see above).
    """
    if not _MAY_BE_DEFANGED.search(text):
        return text
    text = _BRACKET_RUN.sub(lambda m: m.group(0)[:8], text)
    text = _BLANK_RUN.sub(lambda m: m.group(0)[:8], text)
    return _fang(text)


def ip_host(host: str) -> str | None:
    """The compressed form of an IPv4/IPv6 literal (brackets allowed), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _ascii_label(label: str) -> str | None:
    if label.isascii():
        label = label.lower()
    else:
        try:
            label = idna.encode(label, uts46=True).decode("ascii")
        except idna.IDNAError:
            return None
    return label if _ASCII_LABEL.match(label) else None


def hostname(host: str) -> str | None:
    """Lower-case IDNA host name with a known public suffix, else None. A platform's own host
    that is itself a suffix of the list's private section (``s3.amazonaws.com``, serving every
    customer's bucket path-style) is a host too: phishing pages live there."""
    name = canonical_domain(host)  # the gate's reading: NFKC, "。" and "．" dots, no zero-width
    labels = name.split(".")
    if len(labels) < 2 or len(name) > 253:
        return None
    ascii_labels = [_ascii_label(label) for label in labels]
    if None in ascii_labels:
        return None
    name = ".".join(ascii_labels)  # type: ignore[arg-type]
    parts = extractor()(name)
    if not parts.suffix or not (parts.domain or platform_suffix(name)):
        return None
    return name


def platform_suffix(name: str) -> bool:
    """A host that is itself a platform's public suffix (``s3.amazonaws.com``, ``github.io``):
    every customer's site is under it or in its paths, so it is judged as one site of its own
    but never sinkholed whole."""
    return suffix_section(name) == "private"


def registrable_domain(name: str) -> str | None:
    """The registrable domain (public suffix + one label) of a normalised host name; a
    platform's own suffix host is its own (:func:`platform_suffix`)."""
    parts = extractor()(name)
    if parts.suffix and not parts.domain and platform_suffix(name):
        return name
    if not parts.suffix or not parts.domain:
        return None
    return f"{parts.domain}.{parts.suffix}"


def normalise_host(host: str) -> str | None:
    """An IP literal or a public-suffix host name, normalised; None if neither."""
    return ip_host(host) or hostname(host)


def normalise_url(candidate: str) -> str | None:
    """Normalise one (possibly defanged) URL; None when it is not a web/ftp URL."""
    return _normalise_fanged(fang(candidate.strip()))


def _normalise_fanged(text: str) -> str | None:
    """:func:`normalise_url` of text already re-fanged (find_urls fangs the whole text once).

    The one URL normaliser (:func:`handrail.gate.canon.canonical_url`, shared with the feed
    parser) with this module's host rule; the fragment is kept, as evidence of what was sent.
    """
    try:
        return canonical_url(text, _url_host, keep_fragment=True)
    except UrlError:
        return None


def _url_host(host: str) -> str | None:
    """A URL's host as a browser reaches it: :func:`normalise_host`, or a legacy IPv4 spelling
    (``http://0xcb.0.113.9/``, ``http://3405803785/``) as the dotted address a browser
    connects to, so the link is judged (an egress block, the never-block guardrails) instead of
    vanishing from the parse. Only in a URL: a bare number in text is no address."""
    found = normalise_host(host)
    if found:
        return found
    legacy = legacy_ipv4(host.rstrip("."))
    return str(legacy) if legacy is not None else None


def url_host(url: str) -> str:
    """The host of a URL produced by :func:`normalise_url` (IPv6 without brackets)."""
    return urlsplit(url).hostname or ""


def find_urls(text: str) -> tuple[list[str], str]:
    """Normalised URLs in free text (defanged or not), and the text with them blanked.

    The second value lets callers look for bare domains without re-finding the hosts,
    paths and query strings of URLs already reported, or the domains of e-mail addresses.
    """
    fanged = fang(text)
    urls = [url for url in map(_normalise_fanged, _url_spans(fanged)) if url]
    return urls, _EMAIL.sub(" ", _URL_SPAN.sub(" ", fanged))


def _url_spans(text: str) -> list[str]:
    return [_trim(match.group(0)) for match in _URL_SPAN.finditer(text)]


def _trim(span: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets from a span's end.

    One pass from the end with running bracket counts: linear however many ``)`` an
    attacker appends (re-counting per character was quadratic).
    """
    opened = {closer: span.count(opener) for closer, opener in _CLOSERS.items()}
    closed = {closer: span.count(closer) for closer in _CLOSERS}
    end = len(span)
    while end:
        last = span[end - 1]
        if last in _TRAILING:
            end -= 1
        elif last in _CLOSERS and opened[last] < closed[last]:
            closed[last] -= 1
            end -= 1
        else:
            break
    return span[:end]


def find_bare_domains(text: str) -> list[str]:
    """Host names written without a scheme (``NOBUX(.)SK``, ``example[.]com``).

    Expects text that has been through :func:`find_urls` (URLs and e-mail addresses
    blanked). A candidate counts only with a real public suffix; ``invoice.pdf`` and
    ``1.5`` do not, ``notes.md`` is treated as a file name, and neither ``account.Click``
    (a sentence run into the next one) nor a one-letter name like ``S.eu`` (letters
    split by dots to dodge filters) is read as a domain.
    """
    found = []
    for match in _BARE_DOMAIN.finditer(fang(text)):
        candidate = match.group(1)
        if _looks_like_prose_or_file(candidate):
            continue
        name = hostname(candidate)
        if name and len(extractor()(name).domain) > 1:  # "S.eu e.spaço": prose, not a site
            found.append(name)
    return found


def _looks_like_prose_or_file(candidate: str) -> bool:
    labels = candidate.split(".")
    tld = labels[-1]
    if len(tld) > 1 and tld[0].isupper() and tld[1:].islower():
        return True
    return len(labels) == 2 and tld.lower() in FILE_EXTENSION_TLDS
