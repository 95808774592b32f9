"""The phishing runbook's domain: triggers, what crosses its activity boundaries, and the
pure rules that decide which domains are malicious and which site goes to takedown.

Which domains are "malicious" is `verdict.py`'s business: every link is unwrapped
(`unwrap.py`), each destination domain gets a verdict with its evidence, and only a
high-confidence domain outside the popular list is sinkholed without a human; a medium one
is proposed with `confidence="medium"` (the gate's `confidence` guardrail holds it), the
rest is reported in the run's summary. Bare domains written in prose are never candidates
(they are often the brand named in the lure). The allowlist is reported, never proposed.

Nothing here fetches, resolves or opens anything: hosts are strings.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from pydantic import BaseModel, Field

from handrail.gate.limits import HeaderValue, Principal, Sha256Hex, ToolId

DAY = 86400.0
MAX_DOMAINS = 100  # candidate domains a run is handed (the full parse is stored by reference)
MAX_URLS = 20  # URLs shown in the run's summary
MAX_RECIPIENTS = 20
MAX_VERDICTS = 30  # verdict rows in the run's summary (the full table is in the stored parse)
MAX_EGRESS = 5  # IP links proposed for an egress block per run
MAX_PAGES = 5  # pages on popular platforms proposed for a web proxy block per run
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
    """A malicious domain (the name to sinkhole: its registrable domain, or below an established
    one the single host linked) and the first link to it (what takedown gets)."""

    domain: str
    url: str
    url_count: int
    confidence: str = "high"  # the verdict's (verdict.py): high is sinkholed, medium holds
    evidence: list[str] = Field(default_factory=list)


class Page(BaseModel):
    """A phishing page on a popular platform (its domain stays): proposed for a web proxy block."""

    url: str
    domain: str
    confidence: str = "high"
    evidence: list[str] = Field(default_factory=list)


class EgressCandidate(BaseModel):
    """A bare IP address the message links to: proposed for an egress block."""

    ip: str
    url: str
    evidence: list[str] = Field(default_factory=list)


class DomainRow(BaseModel):
    """One line of the run's verdict table (`handrail show`): domain, verdict, evidence, action."""

    domain: str
    verdict: str  # high | medium | low
    score: int
    action: str  # sinkhole | block_url | hold | report
    rank: int | None = None
    evidence: list[str] = Field(default_factory=list)
    pages: list[str] = Field(default_factory=list)  # block_url: the pages blocked on the web proxy


class MailReport(BaseModel):
    """What the workflow knows about the message: facts, counts and capped lists.

    The full parse (every URL, domain, attachment, each domain's verdict) is stored as evidence
    in the installation's store; `parse_ref` (`store:json:<sha256>`) names it
    (handrail.runbooks.phishing.evidence).
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
    sites: list[Site] = Field(default_factory=list)  # the first MAX_DOMAINS to sinkhole or hold
    sites_total: int = 0
    verdicts: list[DomainRow] = Field(default_factory=list)  # the first MAX_VERDICTS link domains
    verdicts_total: int = 0
    egress: list[EgressCandidate] = Field(default_factory=list)  # the first MAX_EGRESS IP links
    pages: list[Page] = Field(default_factory=list)  # the first MAX_PAGES pages to block on the web proxy
    wrappers: list[str] = Field(default_factory=list)  # link wrapper hosts (never targets)
    ranking_problem: str | None = None  # why no top-sites list was available
    not_judged: int = 0  # link domains past the per-message limit (hostile mail)


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


