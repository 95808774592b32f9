"""The phishing runbook's read-only side effects: fetch and parse a reported message, map
its recipients to users and devices, scan devices, find the run's case, and the mailbox
poller's listing and marking.

None of these changes a security tool (changes go through the step gate) and none of them
decides anything. The raw message is big, hostile data: it is fetched and parsed here, the
full parse is stored as evidence in the store every worker shares (`parse_ref`), and the workflow gets
facts, counts and capped lists (`MailReport`). Nothing here fetches, resolves or opens a
URL or domain from the message.
"""

from __future__ import annotations

import hashlib

from temporalio import activity

from activities.context import WorkerContext
from activities.errors import policy_failure, tool_failure
from activities.offloop import DeadlineExceeded, run_bounded
from activities.triggers import valid_only
from handrail.gate.limits import clip_header
from handrail.gate.policy import PolicyError
from handrail.runbooks.phishing.evidence import store_evidence
from handrail.runbooks.phishing.mail import MalformedMessage
from handrail.runbooks.phishing.rules import (
    ENDPOINT_TYPES,
    MAX_DOMAINS,
    MAX_EGRESS,
    MAX_PAGES,
    MAX_RECIPIENTS,
    MAX_URLS,
    MAX_VERDICTS,
    DomainRow,
    EgressCandidate,
    HostScan,
    MailboxPoll,
    MailReport,
    MarkProcessed,
    NewMessages,
    Page,
    ParseRequest,
    PhishingTrigger,
    Recipient,
    RecipientsReport,
    RecipientsRequest,
    ScanReport,
    ScanRequest,
    Site,
)
from handrail.runbooks.phishing.triage import Triage, load_context, triage
from handrail.tools.errors import Conflict, NotFound, ToolError

# Inside rb.look's 60 s start-to-close; the worst of the pathological corpus takes a few
# seconds (`handrail bench parse`), so only a pathological *and* new input reaches it.
PARSE_DEADLINE_S = 40.0


class PhishingActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.settings, self.tools, self.ledger = ctx.settings, ctx.tools, ctx.ledger

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
            judged, digest, ref = await run_bounded(self._judge_and_store, raw, deadline_s=PARSE_DEADLINE_S)
        except MalformedMessage as exc:
            return MailReport(mailbox_id=request.mailbox_id, rejected=f"the message is malformed: {exc.reason}")
        except DeadlineExceeded:
            return MailReport(mailbox_id=request.mailbox_id,
                              rejected=f"the message could not be parsed within {PARSE_DEADLINE_S:g} s")
        except PolicyError as exc:
            raise policy_failure(exc) from None
        mail, judgement = judged.mail, judged.judgement
        sites = [Site(domain=v.target or v.domain, url=v.url, url_count=v.url_count,
                      confidence=v.sinkhole_confidence(),
                      evidence=[e[:200] for e in v.evidence[:8]]) for v in judgement.acting()]
        rows = [DomainRow(domain=v.domain, verdict=v.confidence, score=v.score, action=v.action, rank=v.rank,
                          evidence=[e[:200] for e in v.evidence[:8]], pages=v.pages) for v in judgement.domains]
        pages = [Page(url=url, domain=v.domain, confidence=v.page_confidence(),
                      evidence=[e[:200] for e in v.evidence[:8]])
                 for v in judgement.blocking_pages() for url in v.pages]
        return MailReport(
            mailbox_id=request.mailbox_id,
            message_id=mail.message_id,
            sha256=digest,
            parse_ref=ref,
            sender=mail.sender,
            sender_display=mail.sender_display,
            subject=mail.subject,
            recipients=mail.judged_recipients()[:MAX_RECIPIENTS],  # a report's: the lure's
            url_count=len(mail.urls),
            domain_count=len(mail.domains),
            ip_count=len(mail.ips),
            attachment_count=len(mail.attachments),
            mismatch_count=len(mail.link_mismatches),
            urls=mail.urls[:MAX_URLS],
            ips=mail.ips[:MAX_URLS],
            sites=sites[:MAX_DOMAINS],
            sites_total=len(sites),
            verdicts=rows[:MAX_VERDICTS],
            verdicts_total=len(rows),
            egress=[EgressCandidate(ip=c.ip, url=c.url, evidence=c.evidence) for c in judgement.ips[:MAX_EGRESS]],
            pages=pages[:MAX_PAGES],
            wrappers=judgement.wrappers[:MAX_URLS],
            ranking_problem=judgement.ranking_problem,
            not_judged=judgement.not_judged,
        )

    def _judge_and_store(self, raw: bytes) -> tuple[Triage, str, str]:
        """Blocking, so it runs off the loop with a deadline: parse and judge offline (the dry
        run uses the same code) and store the full parse with its verdicts as evidence, in the
        store every worker shares (handrail.runbooks.phishing.evidence)."""
        intel = self.ctx.intel  # the worker's intel state and store (SQLite or PostgreSQL)
        judged = triage(raw, load_context(self.settings.policy_path, self.settings.home, intel))
        digest = hashlib.sha256(raw).hexdigest()
        store = intel.store
        stored = judged.mail.model_dump(mode="json") | {"verdicts": judged.judgement.model_dump(mode="json"),
                                                        "message_sha256": digest}
        return judged, digest, store_evidence(store, stored)

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

