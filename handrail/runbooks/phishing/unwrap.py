"""Undo link wrappers and redirectors before any domain is judged.

Mail security gateways (SafeLinks, urldefense, Mimecast, ...), search and ad redirects and
mail-marketing click trackers put their own host in front of the real destination. If
the wrapper were judged, a run would sinkhole `safelinks.protection.outlook.com` (the
company's own mail) and let the attacker's site through. So every URL is unwrapped,
recursively, by pure string work: nothing is fetched, resolved or opened.

One table, `RULES`, holds the wrappers. A rule names the hosts it owns (a host suffix
and optionally a path prefix) and how the destination is written in the URL. A URL on a
rule's host is a *wrapper*: never a target, whether or not its destination can be read
(Mimecast only keeps the destination's host; a broken SafeLinks link still belongs to
Microsoft). Add a wrapper by adding a row; each row has a test with a real-shaped URL.

A URL on any other host whose query carries a full destination URL (``?url=https://...``)
is a *redirector*: the destination is judged as the link, and the redirector's own domain
is kept as a weaker candidate (attackers run redirectors too; the verdict says so).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from handrail.runbooks.phishing.indicators import normalise_url, url_host

MAX_DEPTH = 6  # wrappers inside wrappers; real mail rarely nests more than three
MAX_LENGTH = 8192  # a longer "URL" is not unwrapped (hostile input stays cheap)

Decoder = Callable[[str], "str | None"]


def _query(url: str, *names: str) -> str | None:
    """The first named query parameter holding a value (parse_qsl percent-decodes once)."""
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=False))
    for name in names:
        if params.get(name):
            return params[name]
    return None


def query_param(*names: str) -> Decoder:
    """Destination in a query parameter: ``?url=https%3A%2F%2F...``."""
    return lambda url: _query(url, *names)


def _proofpoint_v1(url: str) -> str | None:
    return _query(url, "u")


def _proofpoint_v2(url: str) -> str | None:
    """``/v2/url?u=https-3A__www.example.com_path&d=...``: ``-XX`` is a hex byte, ``_`` a slash."""
    value = _query(url, "u")
    if not value:
        return None
    value = value.replace("_", "/")
    return re.sub(r"-([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


_V3 = re.compile(r"/v3/__(?P<url>.+?)__;(?P<codes>[^!]*)!")


def _proofpoint_v3(url: str) -> str | None:
    """``/v3/__<url>__;<base64 of the replaced characters>!!<tenant>!<hash>$``.

    Characters Proofpoint could not leave in the URL are written ``*`` and listed, in
    order, base64url-encoded after ``__;``; ``**X`` stands for a run of them (X encodes
    the run length, A=2, B=3, ...).
    """
    match = _V3.search(url)
    if not match:
        return None
    inner, codes = match.group("url"), match.group("codes")
    try:
        padded = codes + "=" * (-len(codes) % 4)
        replacements = iter(base64.urlsafe_b64decode(padded).decode("utf-8", "replace")) if codes else iter(())
    except (binascii.Error, ValueError):
        return inner
    run_lengths = {c: i + 2 for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}

    def replace(m: re.Match) -> str:
        count = run_lengths.get(m.group(1)[2:], 1) if m.group(1).startswith("**") else 1
        return "".join(next(replacements, "") for _ in range(count))

    return re.sub(r"(\*\*[A-Za-z0-9_-]|\*)", replace, inner)


def _mimecast(url: str) -> str | None:
    """Mimecast keeps only the destination's host (``?domain=``): judge that host."""
    domain = _query(url, "domain")
    return f"http://{domain}/" if domain else None


_SES_PATH = re.compile(r"^/L\d+/(?P<dest>[^/]+(?:/[^/]*)*?)/\d+/")


def _amazon_ses(url: str) -> str | None:
    """Amazon SES click tracking: ``https://<id>.r.<region>.awstrack.me/L0/<url-encoded dest>/1/...``."""
    match = _SES_PATH.match(urlsplit(url).path)
    return unquote(match.group("dest")) if match else None


def _postmark(url: str) -> str | None:
    """Postmark: ``https://click.pstmrk.it/3s/<host%2Fpath>/<token>``; the scheme is https."""
    parts = urlsplit(url).path.split("/")
    if len(parts) >= 3 and parts[2]:
        return "https://" + unquote(parts[2])
    return None


def _hidden(url: str) -> str | None:
    return None


@dataclass(frozen=True)
class Rule:
    """One wrapper: the hosts it owns and how to read the destination from its URLs."""

    name: str
    hosts: tuple[str, ...]  # a host matches when it is one of these or ends with "." + one
    decode: Decoder
    path_prefix: str = ""  # "" = any path on those hosts

    def owns(self, host: str, path: str) -> bool:
        on_host = any(host == h or host.endswith("." + h) for h in self.hosts)
        return on_host and path.startswith(self.path_prefix)


RULES: tuple[Rule, ...] = (
    Rule("Microsoft SafeLinks", ("safelinks.protection.outlook.com", "safelinks.protection.office365.us"),
         query_param("url")),
    Rule("Proofpoint urldefense v1", ("urldefense.proofpoint.com",), _proofpoint_v1, "/v1/"),
    Rule("Proofpoint urldefense v2", ("urldefense.proofpoint.com",), _proofpoint_v2, "/v2/"),
    Rule("Proofpoint urldefense v3", ("urldefense.com",), _proofpoint_v3, "/v3/"),
    Rule("Mimecast URL protect", ("mimecast.com", "mimecastprotect.com"), _mimecast, "/s/"),
    Rule("Symantec click-time", ("clicktime.symantec.com",), query_param("u")),
    Rule("Google redirect", tuple(f"google.{tld}" for tld in ("com", "co.uk", "de", "fr", "es", "it", "nl",
                                                                "com.br", "ca", "com.au", "co.in", "ru")),
         query_param("q", "url"), "/url"),
    Rule("Google ad click", ("googleadservices.com", "googleads.g.doubleclick.net"), query_param("adurl")),
    Rule("Facebook link shim", ("l.facebook.com", "lm.facebook.com", "l.messenger.com"), query_param("u")),
    Rule("LinkedIn redirect", ("linkedin.com",), query_param("url"), "/redir/"),
    Rule("Barracuda link protect", ("linkprotect.cudasvc.com",), query_param("a")),
    Rule("Amazon SES click tracking", ("awstrack.me",), _amazon_ses),
    Rule("Postmark click tracking", ("click.pstmrk.it",), _postmark),
    # Mail-marketing click trackers that keep the destination on their side: the tracker is
    # still never a target (sinkholing it breaks every mail of that sender, not the attacker).
    Rule("ESP click tracking (destination not in the URL)",
         ("ct.sendgrid.net", "list-manage.com", "mandrillapp.com", "hubspotlinks.com", "mailersend.net",
          "responsys.net", "rs6.net", "exacttarget.com", "createsend1.com", "mailgun.org", "mjt.lu",
          "sparkpostmail.com", "mcsv.net"),
         _hidden),
)

# Query parameters that redirectors of every kind use for their destination.
REDIRECT_PARAMS = ("url", "u", "q", "redirect", "redirect_url", "redirect_uri", "target", "dest",
                   "destination", "link", "goto", "to", "r", "adurl", "continue", "next")


@dataclass
class Unwrapped:
    """Where a link really goes, and what it went through to get there."""

    url: str  # the destination, normalised (the link itself when nothing wraps it)
    wrappers: list[str] = field(default_factory=list)  # hosts of known wrappers passed through
    redirectors: list[str] = field(default_factory=list)  # other hosts that redirected
    rules: list[str] = field(default_factory=list)  # names of the rules (and "redirect parameter")
    opaque: bool = False  # a known wrapper whose destination is not in the URL


def wrapper_rule(url: str) -> Rule | None:
    """The table row that owns this (normalised) URL's host and path, if any."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    return next((rule for rule in RULES if rule.owns(host, parts.path or "/")), None)


def _redirect_destination(url: str) -> str | None:
    """A full http(s) URL carried in a redirect-style query parameter, if any."""
    try:
        params = parse_qsl(urlsplit(url).query)
    except ValueError:
        return None
    for name, value in params:
        if name.lower() in REDIRECT_PARAMS and re.match(r"(?i)https?://", value.strip()):
            return value.strip()
    return None


def unwrap(url: str) -> Unwrapped:
    """Follow wrappers and redirect parameters, as text, to the destination."""
    result = Unwrapped(url=url)
    current = url
    for _ in range(MAX_DEPTH):
        if len(current) > MAX_LENGTH:
            break
        rule = wrapper_rule(current)
        if rule is not None:
            result.wrappers.append(url_host(current))
            result.rules.append(rule.name)
            inner = rule.decode(current)
            destination = normalise_url(inner) if inner else None
            if destination is None:
                result.opaque = True
                return result
        else:
            inner = _redirect_destination(current)
            destination = normalise_url(inner) if inner else None
            if destination is None or url_host(destination) == url_host(current):
                break
            result.redirectors.append(url_host(current))
            result.rules.append("redirect parameter")
        current = result.url = destination
    return result


def is_wrapper(url: str) -> bool:
    """True for a URL on a known wrapper's host and path: never a sinkhole target."""
    return wrapper_rule(url) is not None
