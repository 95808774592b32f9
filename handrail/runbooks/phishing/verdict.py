"""A verdict per link domain of a reported message, with the evidence behind it.

Phishing mail links to real brands on purpose (logos, footers, the real login page next
to the fake one) and hides its real destination behind wrappers. So a domain is not
"malicious" because it is linked: each piece of evidence adds points and the total
decides what a run does:

| evidence | points |
| --- | --- |
| already named by the threat-intel feeds the sync applies | 3 |
| a link whose visible text shows another host goes here | 3 |
| a form in the message sends what is typed into it here | 3 |
| look-alike of a popular or protected brand (swap, homoglyph, brand plus words, subdomain) | 3 |
| one letter away from one of the best-known brands | 1 |
| destination of a call-to-action link ("Verify now", "Pay the fee") | 2 |
| an address a script in the message hides as base64 (mail clients run no scripts: a kit does) | 2 |
| not in the top-sites list at all | 1 |
| not the sender's domain | 1 |
| a link carries the recipient's own address (a kit pre-fills its login page; `addressed.py`) | 1 |

At `sinkhole_at` points or more (policy, default 4) the verdict is *high* and the domain is
sinkholed through the gate; at `hold_at` (default 3) it is *medium* and the sinkhole waits for
a human; below, it is reported only. Whatever the points, a domain ranked inside the
top-sites cut-off is never sinkholed automatically (the gate's `popular_domain` guardrail
holds it), link wrappers are never targets (`unwrap.py`), and a domain shown only as the text
of a link to somewhere else is the brand being impersonated, not the attacker.

Nor is a ranked domain (in the list, past the cut-off) that sent the message itself: that is
an established service whose mail was abused, and its click tracking on its own domain (a
link showing the real site, going through the sender's redirect) looks like a lure's
mismatch. Its sinkhole waits for a human; a phisher's own throwaway domain is not ranked.
The same holds for a ranked domain that a link *showing the sender's own site* goes through:
that is the sender's mail service tracking its clicks (an e-mail marketing platform), and for
a ranked domain with no evidence of deception at all (`DECEPTION`: only a button, the only
destination, not the sender's), which is what any real service's notification looks like.
An established domain is also not sinkholed whole for one host: when the message links to a
single host below a ranked domain (``acme.site-builder.example``: one customer of a site
builder or portal platform that the public-suffix list does not know), the sinkhole takes that
host (`target`); an unranked domain is the attacker's own and is sinkholed whole.
A held verdict carries at most *medium* to the gate (`sinkhole_confidence`), so the run holds
it exactly as the dry run says.

A popular domain at *high* confidence is where phishing hides on a shared platform (a page
in a cloud bucket, a form on a forms service): the domain stays, and the pages the message
sends the reader to (calls to action, forms, mismatched links; the path and query exactly,
never a site's front page) are proposed for a web proxy block instead (`block_url`, the
`proxy.block` kind). On a user-content platform's own service host (`storage.googleapis.com`,
by the public-suffix list's private section) the page is a customer's and the block is
automatic; on a popular site's own host it may be the site's own page, so it waits for a human.

A link to a bare IP address has no name to sinkhole: it becomes a candidate for an egress
block, which the policy holds for a human by default.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from handrail.gate.policy import PolicyError
from handrail.runbooks.phishing.addressed import address_forms, carries_address
from handrail.runbooks.phishing.indicators import hostname, ip_host, platform_suffix, registrable_domain, url_host
from handrail.runbooks.phishing.lookalike import Brands, lookalike, make_brands
from handrail.runbooks.phishing.mail import ParsedMessage
from handrail.runbooks.phishing.popular import Ranking, platform_host, rank_key
from handrail.runbooks.phishing.unwrap import unwrap

POINTS = {
    "intel": 3,
    "mismatch": 3,
    "form": 3,
    "lookalike": 3,
    "typo": 1,
    "call_to_action": 2,
    "unranked": 1,
    "sender_mismatch": 1,
    "only_destination": 1,
    "hidden": 2,
    "recipient": 1,
}
# Evidence that the message deceives (shows one site and sends to another, asks for what is
# typed, dresses a name up as a brand, hides an address, is known bad). A site in the top-sites
# list (past the cut-off) is an established one: being a message's button or only destination
# is what any real service's mail looks like, so without one of these it is not sinkholed
# automatically.
DECEPTION = frozenset({"intel", "mismatch", "form", "lookalike", "hidden"})
MAX_CTA_TEXT = 60  # longer link text is a sentence, not a button
MAX_PAGES = 3  # pages of one popular domain proposed for a proxy block
MAX_PAGE_URL = 2048  # longer is not a page a proxy blocks by its URL
MAX_CANDIDATES = 500  # link domains judged per message; hostile mail with more is cut, and says so

_CALL_TO_ACTION = re.compile(
    r"\b(verify|confirm|log\s?[io]n|sign\s?[io]n|update|unlock|restore|reactivate|re-activate|validate|"
    r"secure\s+(?:your|my)|review\s+(?:the\s+)?(?:document|file|invoice)|review\s+and\s+sign|"
    r"(?:view|open|download|access)\s+(?:the\s+|your\s+|my\s+)?(?:document|invoice|file|message|attachment|"
    r"statement|voicemail|fax|pdf|account|mailbox)|pay\b|pay\s+(?:now|the|your)|click\s+here|"
    r"track\s+(?:your\s+)?(?:parcel|package|order|shipment)|claim|reset|keep\s+(?:my|your|the)\s+"
    r"(?:current\s+)?password|get\s+started|accept|release\s+(?:pending\s+)?messages|"
    # the same calls in the languages lures arrive in most (pt, es, fr, de, it, nl)
    r"pagamento|pagar|pague|efetuar|acompanhar|rastrear|confirmar|verificar|acessar|acceder|atualizar|"
    r"actualizar|regularizar|clique\s+aqui|haga\s+clic|cliquez|v[ée]rifier|confirmer|payer|"
    r"mettre\s+[àa]\s+jour|acc[ée]der|best[äa]tigen|verifizieren|anmelden|aktualisieren|bezahlen|"
    r"verificare|accedi|aggiorna|pagare|bevestigen|verifi[ëe]ren|inloggen|betalen)\b",
    re.IGNORECASE,
)
_NOT_AN_ACTION = re.compile(r"unsubscribe|privacy|terms|preferences|opt.?out|help\s*cent", re.IGNORECASE)


@dataclass(frozen=True)
class VerdictSettings:
    """The thresholds and brand names from the policy (`[settings.phishing]`, `[settings.popular]`)."""

    sinkhole_at: int = 4
    hold_at: int = 3
    cutoff: int = 10_000
    brands_top: int = 10_000
    brands: tuple[str, ...] = ()  # extra protected names or domains
    allowlist: tuple[str, ...] = ()  # the company's own domains and SaaS (never proposed)

    @classmethod
    def from_policy(cls, settings: dict[str, Any], allowlist: list[str]) -> "VerdictSettings":
        """Read the thresholds; a wrong type is a PolicyError naming the setting."""
        phishing = settings.get("phishing", {}) if isinstance(settings, dict) else {}
        popular = settings.get("popular", {}) if isinstance(settings, dict) else {}
        try:
            return cls._build(phishing, popular, allowlist)
        except (TypeError, ValueError, AttributeError) as exc:
            raise PolicyError(f"[settings.phishing] or [settings.popular] is invalid: {exc}") from None

    @classmethod
    def _build(cls, phishing: dict[str, Any], popular: dict[str, Any], allowlist: list[str]) -> "VerdictSettings":
        return cls(
            sinkhole_at=int(phishing.get("sinkhole_at", 4)),
            hold_at=int(phishing.get("hold_at", 3)),
            cutoff=int(popular.get("cutoff", 10_000)),
            brands_top=int(popular.get("brands_top", 10_000)),
            brands=tuple(str(b) for b in phishing.get("brands", [])),
            allowlist=tuple(a.lower() for a in allowlist),
        )


class DomainVerdict(BaseModel):
    """One link domain: how sure the run is that it is malicious, why, and what it does."""

    domain: str
    url: str  # the first destination URL (what a takedown gets)
    url_count: int = 0
    score: int = 0
    confidence: str = "low"  # high | medium | low
    action: str = "report"  # sinkhole | block_url | hold | report
    evidence: list[str] = Field(default_factory=list)
    rank: int | None = None
    pages: list[str] = Field(default_factory=list)  # block_url: the pages to block on the web proxy
    pages_on_platform: bool = False  # block_url: every page on a user-content platform (automatic)
    target: str = ""  # the name a sinkhole takes: the domain, or the one host linked below a ranked domain

    def line(self) -> str:
        return "; ".join(self.evidence)

    def sinkhole_confidence(self) -> str:
        """The confidence a sinkhole carries to the gate: what the verdict says, except that a
        verdict that *holds* (an established sender, a site past the cut-off with no sign of
        deception) carries at most medium, so the `confidence` guardrail holds it as the dry run
        says. Past the cut-off `popular_domain` does not hold, so a high one would be applied."""
        return self.confidence if self.action == "sinkhole" or self.confidence != "high" else "medium"

    def page_confidence(self) -> str:
        """The confidence a page block carries to the gate: below high (the `confidence`
        guardrail holds it for a human) unless every page is on a user-content platform."""
        return self.confidence if self.pages_on_platform else "medium"


class IpCandidate(BaseModel):
    """A link to a bare IP address: a candidate for an egress block (held by default)."""

    ip: str
    url: str
    evidence: list[str] = Field(default_factory=list)


class Judgement(BaseModel):
    """Every link domain's verdict (most confident first), the IP candidates, and what was skipped."""

    domains: list[DomainVerdict] = Field(default_factory=list)
    ips: list[IpCandidate] = Field(default_factory=list)
    wrappers: list[str] = Field(default_factory=list)  # wrapper hosts: never targets
    ranking_problem: str | None = None
    not_judged: int = 0  # link domains past MAX_CANDIDATES (hostile mail): neither judged nor acted on

    def acting(self) -> list[DomainVerdict]:
        return [d for d in self.domains if d.action in ("sinkhole", "hold")]

    def blocking_pages(self) -> list[DomainVerdict]:
        return [d for d in self.domains if d.action == "block_url"]


@dataclass
class _Candidate:
    urls: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    points: dict[str, int] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)
    decoy: bool = False
    tracks_sender: bool = False  # a link showing the sender's own site goes through it
    target: bool = False  # something in the message sends the reader here
    pages: list[str] = field(default_factory=list)  # the destinations it is sent to (call to action, form, mismatch)

    def lands(self, url: str) -> None:
        """Only the first MAX_PAGES pages are ever proposed, so only they are kept: a message of
        thousands of mismatched links costs a constant lookup per link, never a growing one."""
        if len(self.pages) >= MAX_PAGES:
            return
        page = page_url(url)
        if page and page not in self.pages:
            self.pages.append(page)

    def add(self, key: str, text: str, points: int | None = None) -> None:
        if key in self.points:
            return
        self.points[key] = POINTS.get(key, 0) if points is None else points
        self.evidence.append(text)


def brands_for(ranking: Ranking | None, settings: VerdictSettings) -> Brands:
    """The popular list's top names plus the policy's protected names (never from mail)."""
    top = ranking.top(settings.brands_top) if ranking else []
    ranked = frozenset(ranking.ranks) if ranking else frozenset()
    return make_brands(top, list(settings.brands) + list(settings.allowlist), ranked)


def is_call_to_action(text: str) -> bool:
    text = text.strip()
    if "://" in text or text.lower().startswith("www."):
        return False  # a URL shown as text is a mismatch matter, not a button
    return bool(text) and len(text) <= MAX_CTA_TEXT and not _NOT_AN_ACTION.search(text) \
        and bool(_CALL_TO_ACTION.search(text))


def page_url(url: str) -> str | None:
    """The page a proxy blocks for a link: scheme, host, path and query exactly (the fragment
    never reaches a server; userinfo is not part of the request). None for a site's front
    page, which is the site, not a page on it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path in ("", "/"):
        return None
    query = f"?{parts.query}" if parts.query else ""
    page = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}{query}"
    return page if len(page) <= MAX_PAGE_URL else None


def _allowlisted(domain: str, allowlist: tuple[str, ...]) -> bool:
    return any(domain == entry or domain.endswith("." + entry) for entry in allowlist)


def judge(mail: ParsedMessage, ranking: Ranking | None, settings: VerdictSettings,
          brands: Brands | None = None, ranking_problem: str | None = None,
          intel: frozenset[str] = frozenset()) -> Judgement:
    """The verdict for every link domain of a parsed message (pure: strings in, verdicts out)."""
    brands = brands if brands is not None else brands_for(ranking, settings)
    candidates: OrderedDict[str, _Candidate] = OrderedDict()
    ips: OrderedDict[str, IpCandidate] = OrderedDict()
    wrappers: set[str] = set()
    destination: dict[str, str | None] = {}
    via: dict[str, list[str]] = {}  # unknown redirectors a link passes through: the click lands there first
    skipped = 0

    def resolve(url: str) -> str | None:
        if url not in destination:
            result = unwrap(url)
            wrappers.update(result.wrappers)
            destination[url] = None if result.opaque else result.url
            via[url] = []
            for host in result.redirectors:
                domain = registrable_domain(host)
                if domain:
                    cand = candidates.setdefault(domain, _Candidate())
                    cand.urls.append(url)
                    cand.add("redirector", f"redirects to {url_host(result.url)} (its own link parameter)", 0)
                    via[url].append(domain)
        return destination[url]

    for url in mail.urls:
        dest = resolve(url)
        if dest is None:
            continue
        host = url_host(dest)
        ip = ip_host(host)
        if ip:
            first = ["link to a bare IP address: no name to sinkhole"]
            if ip in intel:
                first.append("named by the threat-intel feeds")
            ips.setdefault(ip, IpCandidate(ip=ip, url=dest, evidence=first))
            continue
        domain = registrable_domain(host)
        if not domain:
            continue
        if domain not in candidates and len(candidates) >= MAX_CANDIDATES:
            skipped += 1
            continue
        cand = candidates.setdefault(domain, _Candidate())
        cand.urls.append(dest)
        if host not in cand.hosts:
            cand.hosts.append(host)

    sender_host = mail.judged_sender().rpartition("@")[2]
    sender_domain = registrable_domain(sender_host) if sender_host and hostname(sender_host) else None
    addressed = address_forms(mail.judged_recipients())
    cta_domains: set[str] = set()
    for link in mail.links:
        dest = resolve(link.url)
        if dest is None:
            continue
        host = url_host(dest)
        if ip_host(host):
            if link.kind == "form" or is_call_to_action(link.text):
                ip = ip_host(host)
                if ip in ips and len(ips[ip].evidence) < 3:
                    what = "a form posts to it" if link.kind == "form" else f"call-to-action link {link.text!r}"
                    if what not in ips[ip].evidence:
                        ips[ip].evidence.append(what)
            continue
        domain = registrable_domain(host)
        if domain in candidates and domain != sender_domain and not _NOT_AN_ACTION.search(link.text) \
                and (carries_address(link.url, addressed) or carries_address(dest, addressed)):  # not fine print
            candidates[domain].add("recipient", "a link here carries the recipient's own address "
                                                "(a kit pre-fills its login page with it)")
        # A redirect parameter must not launder a lure (?url=https://www.microsoft.com/): the
        # redirector is judged on the link's evidence as well as the destination.
        for hop in dict.fromkeys([domain, *via.get(link.url, [])]):
            if not hop or hop not in candidates:
                continue
            cand = candidates[hop]
            if link.kind == "form":
                cand.target = True
                cand.add("form", f"a form in the message sends what is typed into it to {host}")
            elif is_call_to_action(link.text):
                cand.target = True
                cta_domains.add(hop)
                cand.add("call_to_action", f"destination of the call-to-action link {link.text!r}")
            elif link.kind == "pdf":  # a PDF lure's button; no words to judge, so no points of its own
                cand.target = True
                cand.add("pdf_link", "a link in an attached PDF leads here", 0)
            else:
                continue
            if hop == domain:
                cand.lands(dest)
    if len(cta_domains) == 1:
        only = next(iter(cta_domains))
        candidates[only].evidence.append("the only destination of the message's calls to action")
    followed = [link.url for link in mail.links] or mail.urls  # a plain-text message: its URLs are its links
    linked = {registrable_domain(url_host(d)) for d in map(resolve, followed) if d}
    linked.discard(None)
    if len(linked) == 1 and next(iter(linked)) in candidates:
        only = candidates[next(iter(linked))]
        only.add("only_destination", "every link in the message leads here")
        if not only.pages:  # no call to action, form or mismatch named the page: every link but the fine print
            for link in mail.links:  # links only: a script's or an image's URL is no page a reader opens
                dest = None if _NOT_AN_ACTION.search(link.text) else resolve(link.url)
                if dest:
                    only.lands(dest)

    for url in mail.hidden_urls:
        dest = resolve(url)
        domain = registrable_domain(url_host(dest)) if dest else None
        if domain in candidates:
            candidates[domain].target = True
            candidates[domain].add("hidden", "a script in the message hides this address as base64")

    for mismatch in mail.link_mismatches:
        shown = registrable_domain(url_host(mismatch.text_url))
        dest = resolve(mismatch.href_url)
        real = registrable_domain(url_host(dest)) if dest else None
        if not real or real == shown:
            continue  # a wrapper around the shown site: no deception
        for hop in dict.fromkeys([real, *via.get(mismatch.href_url, [])]):
            if hop in candidates and hop != shown:
                candidates[hop].target = True
                candidates[hop].add("mismatch", f"a link showing {url_host(mismatch.text_url)} leads here")
                if shown is not None and shown == sender_domain:
                    candidates[hop].tracks_sender = True
                if hop == real:
                    candidates[hop].lands(dest)
        if shown in candidates:
            candidates[shown].decoy = True

    for domain, cand in candidates.items():
        named = next((h for h in [domain, *cand.hosts] if h in intel), None)
        if named:
            cand.add("intel", f"named by the threat-intel feeds ({named})")
    verdicts = [_verdict(domain, cand, ranking, settings, brands, sender_domain) for domain, cand in candidates.items()]
    order = {"sinkhole": 0, "block_url": 1, "hold": 2, "report": 3}
    verdicts.sort(key=lambda v: (order[v.action], -v.score))
    return Judgement(domains=verdicts, ips=list(ips.values()), wrappers=sorted(wrappers),
                     ranking_problem=ranking_problem if ranking is None else None, not_judged=skipped)


def _verdict(domain: str, cand: _Candidate, ranking: Ranking | None, settings: VerdictSettings,
             brands: Brands, sender_domain: str | None) -> DomainVerdict:
    rank = ranking.rank(rank_key(cand.hosts[0] if cand.hosts else domain) or domain) if ranking else None
    popular = rank is not None and rank <= settings.cutoff
    if not popular:
        for host in cand.hosts or [domain]:
            found = lookalike(domain, brands, host)
            if found:
                key = "lookalike" if found.strong else "typo"
                cand.add(key, f"look-alike of {found.brand} ({found.how}: {found.detail})")
                break
    if ranking is None:
        cand.add("rank", "rank unknown: no readable top-sites list", 0)
    elif rank is None:
        cand.add("unranked", "not in the top-sites list")
    else:
        where = "inside" if popular else "outside"
        cand.add("rank", f"rank {rank:,} in the top-sites list, {where} the cut-off {settings.cutoff:,}", 0)
    if sender_domain is None:
        cand.add("sender_mismatch", "the sender's address has no valid domain")
    elif sender_domain != domain:
        cand.add("sender_mismatch", f"not the sender's domain ({sender_domain})")
    else:
        cand.add("sender", "the sender's own domain", 0)
    if cand.decoy and not cand.target:
        cand.add("decoy", "shown as the text of a link that goes elsewhere: the brand being imitated", 0)
    score = sum(cand.points.values())
    confidence = "high" if score >= settings.sinkhole_at else "medium" if score >= settings.hold_at else "low"
    if cand.decoy and not cand.target:
        confidence = "low"
    if _allowlisted(domain, settings.allowlist):
        action = "report"
        cand.evidence.append("on the company's allowlist: never sinkholed")
    elif confidence == "low":
        action = "report"
    elif popular and confidence == "high" and cand.pages:
        action = "block_url"
        pages = cand.pages[:MAX_PAGES]
        what = f"the {_pages(len(pages))} the message sends the reader to"
        if all(platform_host(url_host(page)) for page in pages):
            cand.evidence.append(f"popular: the domain stays; {what} (a customer's, on a user-content platform) "
                                 "blocked on the web proxy")
        else:
            cand.evidence.append(f"popular: the domain stays; a web proxy block of {what} waits for a human "
                                 "(the site's own host, not a user-content platform)")
    elif platform_suffix(domain):
        action = "block_url" if confidence == "high" and cand.pages else "report"
        cand.evidence.append("a platform's own host (a public suffix: every customer's site is under it), never "
                             "sinkholed whole" + ("; the pages the message sends the reader to are blocked on the "
                                                  "web proxy" if action == "block_url" else ""))
    elif popular:
        action = "hold"
        cand.evidence.append("popular: the sinkhole waits for a human")
    elif ranking is None:
        action = "hold"
        cand.evidence.append("no top-sites list: the sinkhole waits for a human")
    elif confidence == "high" and rank is not None and domain == sender_domain:
        action = "hold"
        cand.evidence.append("a ranked site sending its own mail (its click tracking shows other sites as "
                             "link text): an abused service, so the sinkhole waits for a human")
    elif confidence == "high" and rank is not None and cand.tracks_sender:
        action = "hold"
        cand.evidence.append("a ranked site that links showing the sender's own site go through (the sender's "
                             "mail service tracking its clicks): the sinkhole waits for a human")
    elif confidence == "high" and rank is not None and not cand.points.keys() & DECEPTION:
        action = "hold"
        cand.evidence.append("a ranked site with no sign of deception (only linked to): an established "
                             "service, so the sinkhole waits for a human")
    else:
        action = "sinkhole" if confidence == "high" else "hold"
    target = _sinkhole_target(domain, cand.hosts, rank)
    if target != domain and action in ("sinkhole", "hold"):
        cand.evidence.append(f"an established domain: the sinkhole takes {target} only, not every site under {domain}")
    return DomainVerdict(target=target, domain=domain, url=cand.urls[0] if cand.urls else f"http://{domain}/",
                         url_count=len(cand.urls), score=score, confidence=confidence, action=action,
                         evidence=cand.evidence, rank=rank,
                         pages=cand.pages[:MAX_PAGES] if action == "block_url" else [],
                         pages_on_platform=action == "block_url"
                         and all(platform_host(url_host(page)) for page in cand.pages[:MAX_PAGES]))


def _sinkhole_target(domain: str, hosts: list[str], rank: int | None) -> str:
    """The registrable domain, except below an established (ranked) one: the single host the
    message links to (``www`` is the site itself). A ranked domain is someone else's, and a
    platform the public-suffix list does not know serves every customer from its subdomains."""
    if rank is None or len(hosts) != 1 or hosts[0] in (domain, "www." + domain):
        return domain
    return hosts[0]


def _pages(n: int) -> str:
    return "page" if n == 1 else f"{n} pages"
