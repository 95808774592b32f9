"""The phishing runbook's read-only side effects: fetch and parse a reported message, map
its recipients to users and devices, scan devices, find the run's case, and the mailbox
poller's listing and marking.

None of these changes a security tool (changes go through the step gate) and none of them
decides anything. The raw message is big, hostile data: it is fetched and parsed here, the
full parse is stored under `settings.store_dir` by content hash, and the workflow gets
facts, counts and capped lists (`MailReport`). Nothing here fetches, resolves or opens a
URL or domain from the message.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from temporalio import activity

from activities.errors import tool_failure
from activities.offloop import DeadlineExceeded, run_bounded
from handrail.gate.ledger import Ledger
from handrail.gate.limits import clip_header, valid_only
from handrail.ops.config import Settings
from handrail.runbooks.phishing.mail import MalformedMessage, ParsedMessage, parse_message
from handrail.runbooks.phishing.rules import (
    ENDPOINT_TYPES,
    MAX_DOMAINS,
    MAX_RECIPIENTS,
    MAX_URLS,
    CaseLookup,
    CaseRef,
    HostScan,
    MailboxPoll,
    MailReport,
    MarkProcessed,
    NewMessages,
    ParseRequest,
    PhishingTrigger,
    Recipient,
    RecipientsReport,
    RecipientsRequest,
    ScanReport,
    ScanRequest,
    Site,
    malicious_sites,
)
from handrail.tools.errors import Conflict, NotFound, ToolError

# Inside rb.look's 60 s start-to-close; the worst of the pathological corpus takes a few
# seconds (`handrail bench parse`), so only a pathological *and* new input reaches it.
PARSE_DEADLINE_S = 40.0


class PhishingActivities:
    def __init__(self, settings: Settings, tools: Any, ledger: Ledger | None = None):
        self.settings = settings
        self.tools = tools

    # -- the run ---------------------------------------------------------------------
    @activity.defn
    async def phishing_parse(self, request: ParseRequest) -> MailReport:
        """Fetch the raw message from the mailbox, parse it offline, store the full parse."""
        try:
            raw = await self.tools.mailbox.fetch_raw(request.mailbox_id)
        except NotFound:
            return MailReport(mailbox_id=request.mailbox_id,
                              rejected=f"there is no message {request.mailbox_id} in the phishing mailbox")
        except ToolError as exc:
            raise tool_failure(exc, f"fetching {request.mailbox_id} from the mailbox failed") from None
        if not raw:
            return MailReport(mailbox_id=request.mailbox_id, rejected="the message is empty")
        if request.sha256 and hashlib.sha256(raw).hexdigest() != request.sha256.lower():
            return MailReport(mailbox_id=request.mailbox_id,
                              rejected="the message's content changed since it was reported (hash mismatch)")
        try:
            mail, digest, path, sites = await run_bounded(self._parse_and_store, raw, deadline_s=PARSE_DEADLINE_S)
        except MalformedMessage as exc:
            return MailReport(mailbox_id=request.mailbox_id, rejected=f"the message is malformed: {exc.reason}")
        except DeadlineExceeded:
            return MailReport(mailbox_id=request.mailbox_id,
                              rejected=f"the message could not be parsed within {PARSE_DEADLINE_S:g} s")
        return MailReport(
            mailbox_id=request.mailbox_id,
            message_id=mail.message_id,
            sha256=digest,
            parse_ref=str(path),
            sender=mail.sender,
            sender_display=mail.sender_display,
            subject=mail.subject,
            recipients=mail.recipients[:MAX_RECIPIENTS],
            url_count=len(mail.urls),
            domain_count=len(mail.domains),
            ip_count=len(mail.ips),
            attachment_count=len(mail.attachments),
            mismatch_count=len(mail.link_mismatches),
            urls=mail.urls[:MAX_URLS],
            ips=mail.ips[:MAX_URLS],
            sites=sites[:MAX_DOMAINS],
            sites_total=len(sites),
        )

    def _parse_and_store(self, raw: bytes) -> tuple[ParsedMessage, str, Path, list[Site]]:
        """Blocking: parse offline and store the full parse by content hash (off the loop)."""
        mail = parse_message(raw)
        digest = hashlib.sha256(raw).hexdigest()
        folder = self.settings.store_dir / "phishing"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{digest}.json"
        path.write_text(json.dumps(mail.model_dump(mode="json"), indent=1, sort_keys=True))
        sites = malicious_sites(mail.urls, [(m.text_url, m.href_url) for m in mail.link_mismatches])
        return mail, digest, path, sites

    @activity.defn
    async def phishing_recipients(self, request: RecipientsRequest) -> RecipientsReport:
        """Map recipient addresses to directory users (primary address, else alias) and their devices.

        Devices are the user's own endpoints in the CMDB (laptop, desktop, phone) that have an
        EDR agent; servers a user merely administers are not "the recipient's device".
        """
        report = RecipientsReport()
        seen: set[str] = set()
        try:
            for email in request.recipients:
                users = await self.tools.iam.list_users(email=email)
                if not users:
                    report.unmapped.append(email)
                    continue
                for user in users:
                    if user.username in seen:
                        continue
                    seen.add(user.username)
                    how = "email" if user.email.lower() == email.lower() else "alias"
                    hosts = []
                    for device in await self.tools.cmdb.list_devices(owner=user.username):
                        if device.type in ENDPOINT_TYPES and device.hostname not in hosts:
                            try:
                                await self.tools.edr.get_host(device.hostname)
                            except NotFound:
                                continue  # no EDR agent: nothing to raise or scan
                            hosts.append(device.hostname)
                    report.users.append(Recipient(email=email, username=user.username, how=how,
                                                  hosts=sorted(hosts)))
        except ToolError as exc:
            raise tool_failure(exc, "mapping the recipients to users failed") from None
        return report

    @activity.defn
    async def phishing_scan(self, request: ScanRequest) -> ScanReport:
        """An on-demand EDR scan of each device (the scan itself changes nothing)."""
        report = ScanReport()
        for host in request.hosts:
            try:
                result = await self.tools.edr.scan(host, idempotency_key=f"{request.run_id}/scan/{host}")
            except NotFound:
                report.results.append(HostScan(host=host, verdict="unknown"))
                continue
            except ToolError as exc:
                raise tool_failure(exc, f"scanning {host} failed") from None
            report.results.append(HostScan(host=host, verdict=result.verdict, indicators=result.indicators))
        return report

    @activity.defn
    async def phishing_case(self, request: CaseLookup) -> CaseRef:
        try:
            cases = await self.tools.cases.list_cases(run_id=request.run_id)
        except ToolError as exc:
            raise tool_failure(exc, "looking up the run's case failed") from None
        open_first = sorted(cases, key=lambda c: (c.status != "open", c.id))
        return CaseRef(case_id=open_first[0].id if open_first else None)

    # -- the poller ------------------------------------------------------------------
    @activity.defn
    async def mailbox_new_messages(self, poll: MailboxPoll) -> NewMessages:
        try:
            messages = await self.tools.mailbox.list_messages(status="unprocessed")
        except ToolError as exc:
            raise tool_failure(exc, "listing the phishing mailbox failed") from None
        return NewMessages(triggers=valid_only(
            lambda m: PhishingTrigger(mailbox_id=m.id, message_id=clip_header(m.message_id), sha256=m.sha256,
                                      requested_by=poll.requested_by),
            sorted(messages, key=lambda m: m.id)[: poll.limit]))

    @activity.defn
    async def mailbox_mark_processed(self, request: MarkProcessed) -> int:
        marked = 0
        for mailbox_id in request.mailbox_ids:
            try:
                await self.tools.mailbox.mark_processed(mailbox_id)
                marked += 1
            except (Conflict, NotFound):
                pass  # already processed (a retry), or deleted meanwhile
            except ToolError as exc:
                raise tool_failure(exc, f"marking {mailbox_id} processed failed") from None
        return marked

    def all(self) -> list:
        return [self.phishing_parse, self.phishing_recipients, self.phishing_scan, self.phishing_case,
                self.mailbox_new_messages, self.mailbox_mark_processed]
