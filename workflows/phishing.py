"""Runbook: respond to a reported phishing message, and attach it to incident response.

1. Receive  — `PollMailbox` (schedule "mailbox") or `handrail run phishing` starts one run
   per message, id `phishing-<hash of content hash + mailbox entry>` (never the attacker's
   Message-ID alone), so a message seen twice runs once.
2. Parse    — an activity fetches the raw message and parses it offline; a malformed one
   ends the run `rejected` with the reason, nothing changed.
3. Block    — a verdict per link domain, with evidence (`verdict.py`, after unwrapping link
   wrappers): a high-confidence domain is sinkholed (`dns.sinkhole`, TTL 30 days by
   default), a medium one waits for a human (the `confidence` guardrail), the rest is only
   reported. A popular domain (top-sites cut-off) always waits for a human (`popular_domain`).
   Past the per-run limit each further domain waits for a human, and the first one refused
   there stops the sinkholing. A high-confidence popular domain (phishing on a shared
   platform) stays: the pages the message sends the reader to are blocked on the web proxy
   (`proxy.block` of the URL, same TTL). Links to bare IPs become egress blocks (held by
   default), last.
4. Endpoint — raise EDR telemetry on the recipients' devices for a period (then it drops
   back by itself) and put each recipient on the SIEM/UBA watchlist.
5. Takedown — submit each sinkholed site with the extracted evidence.
6. Respond  — scan the devices; on compromise open a case (with the message, indicators
   and scan results), capture the device's traffic to it, and ask to isolate it
   (`edr.isolate`, approval by default).

Every change goes through the step gate; the result's `summary["changes"]` names them all.
"""

from __future__ import annotations

import json

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.phishing import PhishingActivities
    from handrail.gate.models import Change, RunStatus, StepRecord, StepState
    from handrail.runbooks.phishing.rules import (
        RUNBOOK,
        MailboxPoll,
        MailReport,
        MarkProcessed,
        ParseRequest,
        PhishingTrigger,
        RecipientsReport,
        RecipientsRequest,
        ScanRequest,
    )

from workflows.cases import open_case
from workflows.gate import READ_OPTS, TOOL_OPTS, Rejected, Runbook, RunbookWorkflow
from workflows.poller import PollReport, start_runs


@workflow.defn(name="PhishingResponse")
class PhishingResponse(RunbookWorkflow):
    @workflow.run
    async def run(self, trigger: PhishingTrigger) -> RunStatus:
        async with self.runbook(RUNBOOK, trigger.requested_by, subject=trigger.message_id, trigger=trigger) as rb:
            mail = await rb.look(PhishingActivities.phishing_parse,
                                 ParseRequest(mailbox_id=trigger.mailbox_id, run_id=rb.run_id, sha256=trigger.sha256))
            if mail.rejected:
                rb.status.summary["mailbox_id"] = trigger.mailbox_id
                raise Rejected(mail.rejected)
            self._record_message(rb, mail)

            sinkholed = await self._block_egress(rb, trigger, mail)
            await self._block_pages(rb, trigger, mail)
            people = await rb.look(PhishingActivities.phishing_recipients,
                                   RecipientsRequest(recipients=mail.recipients))
            hosts = await self._investigate_endpoints(rb, trigger, people)
            await self._pay_it_forward(rb, mail, sinkholed)
            await self._respond(rb, trigger, mail, hosts)
            await self._block_ip_links(rb, trigger, mail)
            rb.status.summary["changes"] = _changes(rb)
        return rb.report()

    # -- 2. what the message is ------------------------------------------------------------
    @staticmethod
    def _record_message(rb: Runbook, mail: MailReport) -> None:
        rb.status.summary.update(
            mailbox_id=mail.mailbox_id, message_id=mail.message_id, sha256=mail.sha256, parse_ref=mail.parse_ref,
            sender=mail.sender, subject=mail.subject, recipients=mail.recipients,
            counts={"urls": mail.url_count, "domains": mail.domain_count, "ips": mail.ip_count,
                    "attachments": mail.attachment_count, "link_mismatches": mail.mismatch_count,
                    "malicious_domains": mail.sites_total},
            urls=mail.urls, ips=mail.ips,
        )
        if mail.sites_total > len(mail.sites):
            rb.status.summary["malicious_domains_not_handled"] = mail.sites_total - len(mail.sites)
        rb.status.summary["verdicts"] = [row.model_dump() for row in mail.verdicts]
        if mail.verdicts_total > len(mail.verdicts):
            rb.status.summary["verdicts_not_shown"] = mail.verdicts_total - len(mail.verdicts)
        rb.status.summary["wrappers"] = mail.wrappers
        if mail.not_judged:
            rb.status.summary["domains_not_judged"] = mail.not_judged
        if mail.ranking_problem:
            rb.status.summary["ranking_problem"] = mail.ranking_problem + ": every sinkhole waits for a human"
        rb.audit("phishing.parsed", message_id=mail.message_id, sender=mail.sender, subject=mail.subject,
                 counts=rb.status.summary["counts"], parse_ref=mail.parse_ref)

    # -- 3. block egress ---------------------------------------------------------------------
    async def _block_egress(self, rb: Runbook, trigger: PhishingTrigger, mail: MailReport) -> list[str]:
        sinkholed, denied, skipped = [], [], []
        for i, site in enumerate(mail.sites):  # high confidence first, then the ones to hold
            step = await rb.change(
                Change(kind="dns.sinkhole", target=site.domain,
                       params={"comment": f"phishing {mail.message_id} (run {rb.run_id})",
                               "confidence": site.confidence, "evidence": "; ".join(site.evidence)[:600]}),
                expires_after=trigger.ttl(trigger.sinkhole_ttl_s),
                abort_on_deny=False,
            )
            if step.state in (StepState.APPLIED, StepState.UNCHANGED):
                sinkholed.append(site.domain)
                _narrate(step, f"{site.domain} now resolves to the awareness page "
                               f"({site.url_count} link(s) in the message)")
            elif _guardrail_denied(step) or not _held_by(step, "per_run_limit"):
                denied.append(site.domain)  # allowlisted, or a human said no to this one: the run goes on
            else:  # a human (or the approval timeout) refused past the per-run limit: stop asking
                denied.append(site.domain)
                skipped = [s.domain for s in mail.sites[i + 1:]]
                break
        rb.status.summary.update(sinkholed=sinkholed, sinkhole_denied=denied, sinkhole_skipped=skipped)
        return sinkholed

    # -- 3a. phishing pages on popular platforms: the page is blocked on the web proxy, the site stays
    async def _block_pages(self, rb: Runbook, trigger: PhishingTrigger, mail: MailReport) -> None:
        blocked, refused = await _block_each(rb, trigger, [
            (Change(kind="proxy.block", target=page.url,
                    params={"comment": f"phishing {mail.message_id} (run {rb.run_id}): a page on {page.domain}"[:300],
                            "confidence": page.confidence, "evidence": "; ".join(page.evidence)[:600]}),
             f"the page is blocked on the web proxy; {page.domain} itself stays reachable")
            for page in mail.pages])
        rb.status.summary.update(pages_blocked=blocked, pages_refused=refused)

    # -- 3b. links to bare IP addresses: an egress block each (the policy holds these by default)
    async def _block_ip_links(self, rb: Runbook, trigger: PhishingTrigger, mail: MailReport) -> None:
        blocked, refused = await _block_each(rb, trigger, [
            (Change(kind="firewall.egress_block", target=candidate.ip,
                    params={"comment": f"phishing {mail.message_id} (run {rb.run_id}): {candidate.url}"[:300],
                            "evidence": "; ".join(candidate.evidence)[:600]}),
             f"egress to {candidate.ip} blocked (a link in the message points at it)")
            for candidate in mail.egress])
        rb.status.summary.update(egress_blocked=blocked, egress_refused=refused)

    # -- 4. investigate the endpoint ---------------------------------------------------------
    async def _investigate_endpoints(self, rb: Runbook, trigger: PhishingTrigger,
                                     people: RecipientsReport) -> list[str]:
        rb.status.summary["users"] = [{"email": u.email, "user": u.username, "how": u.how, "hosts": u.hosts}
                                      for u in people.users]
        rb.status.summary["unmapped_recipients"] = people.unmapped
        rb.audit("phishing.recipients", users=rb.status.summary["users"], unmapped=people.unmapped)
        hosts: list[str] = []
        for user in people.users:
            for host in user.hosts:
                if host in hosts:
                    continue
                hosts.append(host)
                step = await rb.change(
                    Change(kind="edr.set_telemetry", target=host, params={"level": trigger.telemetry_level}),
                    expires_after=trigger.ttl(trigger.telemetry_period_s),
                    abort_on_deny=False,
                )
                _narrate(step, f"{user.username}'s device: EDR telemetry {trigger.telemetry_level} "
                               "for the watch period")
            step = await rb.change(
                Change(kind="siem.watch", target=f"user:{user.username}",
                       params={"reason": f"received phishing {rb.status.summary.get('message_id')} (run {rb.run_id})"}),
                expires_after=trigger.ttl(trigger.watch_ttl_s),
                abort_on_deny=False,
            )
            _narrate(step, f"recipient {user.email} is {user.username} (by {user.how}); on the UBA watchlist")
        return hosts

    # -- 5. pay it forward -------------------------------------------------------------------
    async def _pay_it_forward(self, rb: Runbook, mail: MailReport, sinkholed: list[str]) -> None:
        submitted = []
        for site in mail.sites:
            if site.domain not in sinkholed:
                continue
            evidence = [
                {"kind": "email", "ref": f"sha256:{mail.sha256}",
                 "description": f"reported message {mail.message_id} from {mail.sender}: {mail.subject}"[:500]},
                {"kind": "url", "ref": site.url,
                 "description": f"link in the message ({site.url_count} link(s) to {site.domain})"},
            ]
            step = await rb.change(
                Change(kind="takedown.submit", target=site.url,
                       params={"reason": f"Phishing site {site.domain} linked from a reported message",
                               "evidence": json.dumps(evidence, sort_keys=True)}),
                abort_on_deny=False,
            )
            if step.state in (StepState.APPLIED, StepState.UNCHANGED):
                submitted.append(site.url)
                _narrate(step, f"{site.domain} sent to the takedown provider with the message as evidence")
        rb.status.summary["takedown_submitted"] = submitted

    # -- 6. attach to incident response ------------------------------------------------------
    async def _respond(self, rb: Runbook, trigger: PhishingTrigger, mail: MailReport, hosts: list[str]) -> None:
        if not hosts:
            rb.status.summary["scan"] = []
            return
        scans = await rb.look(PhishingActivities.phishing_scan, ScanRequest(run_id=rb.run_id, hosts=hosts))
        rb.status.summary["scan"] = [r.model_dump() for r in scans.results]
        rb.audit("phishing.scanned", results=rb.status.summary["scan"])
        compromised = scans.compromised
        if not compromised:
            return
        artefacts = [
            {"kind": "email", "ref": f"mailbox:{mail.mailbox_id} sha256:{mail.sha256}",
             "description": f"reported message {mail.message_id} from {mail.sender}: {mail.subject}"[:500]},
            {"kind": "indicators", "ref": mail.parse_ref,
             "description": f"{mail.url_count} URLs, {mail.domain_count} domains, {mail.ip_count} IPs; "
                            f"malicious domains: {', '.join(s.domain for s in mail.sites[:20])}"[:1000]},
        ] + [
            {"kind": "scan", "ref": f"edr:{r.host}",
             "description": f"{r.verdict}: {', '.join(r.indicators)}"[:1000]}
            for r in scans.results
        ]
        names = ", ".join(r.host for r in compromised)
        opened, case = await open_case(
            rb, f"Phishing led to compromise of {names}",
            f"Run {rb.run_id}: message {mail.message_id} from {mail.sender} ({mail.subject}). "
            f"EDR scan found {names} compromised.",
            artefacts=artefacts,
        )
        _narrate(opened, f"EDR scan: {names} compromised; case {case.case_id} opened with the message, "
                         f"indicators and scan results")
        rb.status.summary["compromised"] = [r.host for r in compromised]
        for result in compromised:
            step = await rb.change(
                Change(kind="edr.start_capture", target=result.host, params={"case_id": case.case_id}),
                expires_after=trigger.ttl(trigger.capture_ttl_s),
                abort_on_deny=False,
            )
            _narrate(step, f"packet capture of {result.host} streaming to case {case.case_id}")
        isolated = []
        for result in compromised:
            step = await rb.change(
                Change(kind="edr.isolate", target=result.host,
                       params={"reason": f"compromise after phishing; case {case.case_id}, run {rb.run_id}"}),
                abort_on_deny=False,
            )
            if step.state in (StepState.APPLIED, StepState.UNCHANGED):
                isolated.append(result.host)
                _narrate(step, f"{result.host} quarantined (case {case.case_id})")
        rb.status.summary["isolated"] = isolated


def _held_by(step: StepRecord, guardrail: str) -> bool:
    return any(v.guardrail == guardrail and v.outcome.value == "hold" for v in step.verdicts)


async def _block_each(rb: Runbook, trigger: PhishingTrigger,
                      changes: list[tuple[Change, str]]) -> tuple[list[str], list[str]]:
    """Each block through the gate, with the sinkhole's TTL; a refusal does not stop the rest.
    The targets blocked (or already blocked) and the ones refused."""
    blocked, refused = [], []
    for change, meaning in changes:
        step = await rb.change(change, expires_after=trigger.ttl(trigger.sinkhole_ttl_s), abort_on_deny=False)
        if step.state in (StepState.APPLIED, StepState.UNCHANGED):
            blocked.append(change.target)
            _narrate(step, meaning)
        else:
            refused.append(change.target)
    return blocked, refused


def _narrate(step: StepRecord, text: str) -> None:
    """Say what an applied step means for the incident: `handrail show` prints it as the step's note."""
    if step.state == StepState.APPLIED:
        step.note = text
    elif step.state == StepState.UNCHANGED:
        step.note = f"{text} (already so: nothing to undo)"


def _guardrail_denied(step: StepRecord) -> bool:
    return any(v.outcome.value == "deny" for v in step.verdicts)


def _changes(rb: Runbook) -> list[str]:
    """Every change the run made (applied or found already in place), in order."""
    return [f"{s.step_id}: {s.change.describe()} ({s.state.value})" for s in rb.status.steps
            if s.state in (StepState.APPLIED, StepState.UNCHANGED)]


@workflow.defn(name="PollMailbox")
class PollMailbox:
    """Start one `PhishingResponse` per unprocessed message, then mark those messages processed.

    A message is marked only once its run exists in Temporal (started now, or already), so
    a poller that dies in between loses nothing: the next poll finds the message again,
    sees the run already there and marks it then.
    """

    @workflow.run
    async def run(self, poll: MailboxPoll) -> PollReport:
        new = await workflow.execute_activity_method(
            PhishingActivities.mailbox_new_messages, poll,
            **READ_OPTS,
        )
        report = await start_runs("mailbox", PhishingResponse.run, new.triggers,
                                  lambda t: t.run_id(), runbook=RUNBOOK)
        if new.triggers:
            await workflow.execute_activity_method(
                PhishingActivities.mailbox_mark_processed,
                MarkProcessed(mailbox_ids=[t.mailbox_id for t in new.triggers]),
                **TOOL_OPTS)
        return report

