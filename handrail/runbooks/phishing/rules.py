"""The phishing runbook's domain: triggers, what crosses its activity boundaries, and the
pure rules that decide which domains are malicious and which site goes to takedown.

Which domains are "malicious" (the documented rule):

* every **link host** of the message (URLs from the text, the HTML `href`/`src`-style
  attributes and visible text, text-like attachments and attachment names; IP literal
  hosts excluded) is reduced to its **registrable domain** with the bundled public-suffix
  list (private section included, so `evil.web.app` stays `evil.web.app`, never `web.app`);
* a registrable domain that only appears as the *visible text* of a mismatched link
  (`<a href="https://evil.example/">https://www.paypal.com/</a>`) is the brand being
  impersonated, not the attacker's site, and is left out;
* bare domains written in prose (no scheme) are not sinkholed: they are often the brand
  named in the lure;
* everything else is a candidate. The allowlist (the company's own domains and the SaaS
  it depends on) is *not* filtered here: the `dns.sinkhole` guardrail `never_touch` denies
  those, on the record, and the run goes on (`abort_on_deny=False`).

Nothing here fetches, resolves or opens anything: hosts are strings.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from datetime import timedelta

from pydantic import BaseModel, Field

from handrail.gate.limits import HeaderValue, Principal, Sha256Hex, ToolId
from handrail.runbooks.phishing.indicators import ip_host, registrable_domain, url_host

DAY = 86400.0
MAX_DOMAINS = 100  # candidate domains a run is handed (the full parse is stored by reference)
MAX_URLS = 20  # URLs shown in the run's summary
MAX_RECIPIENTS = 20
RUNBOOK = "phishing"
ENDPOINT_TYPES = ("laptop", "desktop", "phone")  # a mail recipient's own devices


def normalise_message_id(message_id: str) -> str:
    return message_id.strip().strip("<>").strip()


def phishing_run_id(sha256: str, mailbox_id: str, message_id: str = "") -> str:
    """`phishing-<hash of the message's content hash and its mailbox entry>`.

    Not the Message-ID: an attacker chooses that header, and a new message reusing the
    Message-ID of one already handled would otherwise be taken for it and never looked at.
    The same mailbox entry polled (or forwarded byte for byte) twice still runs once. The
    Message-ID is only the fallback when a mailbox backend reports no content hash.
    """
    key = sha256.strip().lower() or "message-id:" + normalise_message_id(message_id)
    digest = hashlib.sha256(f"{key}\0{mailbox_id.strip()}".encode("utf-8", "surrogateescape")).hexdigest()
    return f"phishing-{digest[:16]}"


class PhishingTrigger(BaseModel):
    """One reported message in the phishing mailbox (the raw bytes stay there)."""

    mailbox_id: ToolId  # the mailbox's own id, e.g. MSG-000012
    message_id: HeaderValue  # the Message-ID header, as the mailbox reports it (searchable, never the key)
    sha256: Sha256Hex = ""  # the raw message's content hash, as the mailbox reports it: the run's key
    requested_by: Principal = "mailbox"
    sinkhole_ttl_s: float = 30 * DAY
    telemetry_level: str = "elevated"
    telemetry_period_s: float = 7 * DAY
    watch_ttl_s: float = 30 * DAY
    capture_ttl_s: float = 1 * DAY

    def run_id(self) -> str:
        return phishing_run_id(self.sha256, self.mailbox_id, self.message_id)

    def ttl(self, seconds: float) -> timedelta | None:
        return timedelta(seconds=seconds) if seconds and seconds > 0 else None


class MailboxPoll(BaseModel):
    """The mailbox schedule's argument."""

    requested_by: str = "mailbox"
    limit: int = 200


class NewMessages(BaseModel):
    triggers: list[PhishingTrigger] = Field(default_factory=list)


class MarkProcessed(BaseModel):
    mailbox_ids: list[str]


class ParseRequest(BaseModel):
    mailbox_id: str
    run_id: str
    sha256: str = ""  # when set, the fetched bytes must hash to it (the run is keyed by it)


class Site(BaseModel):
    """A malicious registrable domain and the first link to it (what takedown gets)."""

    domain: str
    url: str
    url_count: int


class MailReport(BaseModel):
    """What the workflow knows about the message: facts, counts and capped lists.

    The full parse (every URL, domain, attachment) is stored under
    `settings.store_dir / "phishing" / <sha256 of the raw message>.json`; `parse_ref` names it.
    """

    mailbox_id: str
    rejected: str | None = None  # why the message cannot be processed (then nothing else is set)
    message_id: str = ""
    sha256: str = ""
    parse_ref: str = ""
    sender: str = ""
    sender_display: str = ""
    subject: str = ""
    recipients: list[str] = Field(default_factory=list)
    url_count: int = 0
    domain_count: int = 0
    ip_count: int = 0
    attachment_count: int = 0
    mismatch_count: int = 0
    urls: list[str] = Field(default_factory=list)  # the first MAX_URLS
    ips: list[str] = Field(default_factory=list)
    sites: list[Site] = Field(default_factory=list)  # the first MAX_DOMAINS candidates
    sites_total: int = 0


class RecipientsRequest(BaseModel):
    recipients: list[str]


class Recipient(BaseModel):
    email: str
    username: str
    how: str  # "email" (primary address) or "alias"
    hosts: list[str] = Field(default_factory=list)


class RecipientsReport(BaseModel):
    users: list[Recipient] = Field(default_factory=list)
    unmapped: list[str] = Field(default_factory=list)


class ScanRequest(BaseModel):
    run_id: str
    hosts: list[str]


class HostScan(BaseModel):
    host: str
    verdict: str  # clean | compromised | unknown
    indicators: list[str] = Field(default_factory=list)


class ScanReport(BaseModel):
    results: list[HostScan] = Field(default_factory=list)

    @property
    def compromised(self) -> list[HostScan]:
        return [r for r in self.results if r.verdict == "compromised"]


class CaseLookup(BaseModel):
    run_id: str


class CaseRef(BaseModel):
    case_id: str | None = None


def malicious_sites(urls: list[str], mismatches: list[tuple[str, str]]) -> list[Site]:
    """Candidate sites in first-seen order of their URLs (see the module docstring)."""
    decoys = {registrable_domain(url_host(text)) for text, _ in mismatches}
    targets = {registrable_domain(url_host(href)) for _, href in mismatches}
    decoys -= targets
    sites: OrderedDict[str, list[str]] = OrderedDict()
    for url in urls:
        host = url_host(url)
        if not host or ip_host(host):
            continue
        domain = registrable_domain(host)
        if not domain or domain in decoys:
            continue
        sites.setdefault(domain, []).append(url)
    return [Site(domain=d, url=found[0], url_count=len(found)) for d, found in sites.items()]
