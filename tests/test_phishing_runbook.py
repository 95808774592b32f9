"""The phishing runbook on the time-skipping server, against a real in-process lab.

Messages are either the real honeypot samples the lab's mailbox is seeded with (their
recipient `phishing@pot` maps to a lab user through an IAM alias) or small hand-made ones
addressed to lab users. Indicators are data: nothing here resolves or fetches them, and
`test_no_extracted_url_is_ever_requested` proves the runbook does not either.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
import uuid
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from handrail.gate.expiry import ExpiryPlan, expiry_id
from handrail.gate.expiry_outcome import apply_expiries
from handrail.gate.models import RollbackTrigger, RunState, RunStatus, StepState
from handrail.intel.backends import open_store
from handrail.runbooks.phishing.evidence import load_evidence
from handrail.runbooks.phishing.rules import MailboxPoll, PhishingTrigger, phishing_run_id
from lab.store import canonical_json
from tests.support import FIXTURES, running_stack, send_decision, skip_time
from workflows.phishing import PhishingResponse, PollMailbox
from workflows.rollback import RollbackRun, rollback_id

pytestmark = pytest.mark.workflow

# The repository's policy, with a small top-sites list of our own (tests/data) in place of
# the one `handrail popular refresh` would fetch: without one every sinkhole would hold.
TOP_SITES = Path(__file__).resolve().parent / "data" / "top-sites.csv"
POLICY = (Path(__file__).resolve().parents[1] / "policy.toml").read_text().replace(
    "[settings.popular]\n", f'[settings.popular]\npath = "{TOP_SITES}"\n', 1)
PHISHING = FIXTURES / "phishing"
needs_fixtures = pytest.mark.skipif(not PHISHING.is_dir(), reason=f"fixture folder {PHISHING} is absent")
POT_USER = "kallen"  # the lab user whose alias is the samples' recipient phishing@pot
COMPROMISED_USER = "cjones"  # lt-cjones carries the planted beacon


def make_eml(to: str, links: list[str], *, message_id: str | None = None, subject: str = "Action required") -> bytes:
    msg = EmailMessage()
    msg["From"] = '"Service Desk" <desk@notify-mailer.example>'
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@notify-mailer.example>"
    msg.set_content("Please verify your account: " + " ".join(links))
    anchors = "".join(f'<p><a href="{link}">Verify now</a></p>' for link in links)
    msg.add_alternative(f"<html><body>{anchors}</body></html>", subtype="html")
    return msg.as_bytes()


async def deliver(stack, raw: bytes, by: str = "alice") -> PhishingTrigger:
    delivered = await stack.tools.mailbox.deliver(raw)
    return PhishingTrigger(mailbox_id=delivered.id, message_id=delivered.message_id,
                           sha256=hashlib.sha256(raw).hexdigest(), requested_by=by)


async def sample_trigger(stack, name: str) -> PhishingTrigger:
    digest = hashlib.sha256((PHISHING / name).read_bytes()).hexdigest()
    message = next(m for m in await stack.tools.mailbox.list_messages() if m.sha256 == digest)
    return PhishingTrigger(mailbox_id=message.id, message_id=message.message_id, sha256=message.sha256,
                           requested_by="alice")


async def start(stack, trigger: PhishingTrigger):
    return await stack.start(PhishingResponse.run, trigger, id=trigger.run_id(),
                             id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)


def completed(status: RunStatus) -> bool:
    return status.state in (RunState.COMPLETED, RunState.REJECTED, RunState.FAILED, RunState.DENIED,
                            RunState.COMPENSATED, RunState.NEEDS_ATTENTION)


def awaiting(status: RunStatus) -> bool:
    return status.state == RunState.AWAITING_APPROVAL


async def closed(handle, timeout: float = 20.0) -> None:
    """Poll until a workflow closes (awaiting its result would skip time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        assert asyncio.get_running_loop().time() < deadline, f"{handle.id} did not finish"
        await asyncio.sleep(0.05)


async def roll_back(stack, run_id: str, approver: str = "bob"):
    """Roll back as carol; an inverse whose kind needs approval (edr.release) is approved by `approver`."""
    handle = await stack.start(RollbackRun.run, RollbackTrigger(run_id=run_id, requested_by="carol"),
                               id=rollback_id(run_id))
    deadline = asyncio.get_running_loop().time() + 20
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        assert asyncio.get_running_loop().time() < deadline, f"{handle.id} did not finish"
        try:
            status = await stack.status(handle)
        except Exception:
            status = None
        step = status.pending_step() if status else None
        if step is not None and not step.decisions:
            await send_decision(handle, approver, status=status)
        await asyncio.sleep(0.05)
    return await handle.result()


async def hosts_of(stack, user: str) -> list[str]:
    return sorted(d.hostname for d in await stack.tools.cmdb.list_devices(owner=user)
                  if d.type in ("laptop", "desktop", "phone"))


def estate_hash_without(tools: dict, *skip: str) -> str:
    return hashlib.sha256(canonical_json({k: v for k, v in tools.items() if k not in skip}).encode()).hexdigest()


@needs_fixtures
async def test_a_real_sample_runs_the_whole_runbook_and_rolls_back_exactly(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        before = (await stack.tools.lab_state()).hash
        trigger = await sample_trigger(stack, "sample-4588.eml")
        handle = await start(stack, trigger)
        status = await stack.wait_for(handle, completed)
        assert status.state == RunState.COMPLETED, status.error
        s = status.summary
        assert s["recipients"] == ["phishing@pot"]
        assert s["users"][0]["user"] == POT_USER and s["users"][0]["how"] == "alias"
        assert s["sinkholed"] == ["rastreiofiscaliza.com"]
        sink = await stack.tools.dns.get_sinkhole("rastreiofiscaliza.com")
        assert sink is not None and sink.address == "10.20.0.80"
        hosts = await hosts_of(stack, POT_USER)
        assert hosts and s["users"][0]["hosts"] == hosts
        for host in hosts:
            assert (await stack.tools.edr.get_host(host)).telemetry == "elevated"
        assert await stack.tools.siem.get_watch("user", POT_USER) is not None
        [submission] = await stack.tools.takedown.list_submissions()
        assert submission.domain == "rastreiofiscaliza.com"
        assert {e.kind for e in submission.evidence} == {"email", "url"}
        assert all(r["verdict"] == "clean" for r in s["scan"])
        assert "case_id" not in s and await stack.tools.cases.list_cases(run_id=handle.id) == []
        kinds = [step.change.kind for step in status.steps]
        assert kinds == ["dns.sinkhole"] + ["edr.set_telemetry"] * len(hosts) + ["siem.watch", "takedown.submit"]
        assert len(s["changes"]) == len(kinds)  # the result names every change
        assert all(step.state == StepState.APPLIED for step in status.steps)
        assert load_evidence(open_store(stack.settings), s["parse_ref"])["domains"]  # the full parse, stored

        report = await roll_back(stack, handle.id)
        assert report.state == "rolled_back" and not report.failed
        assert (await stack.tools.lab_state()).hash == before


async def test_compromise_opens_a_case_captures_and_isolates_after_approval(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        raw = make_eml(f"{COMPROMISED_USER}@corp.example",
                       ["hxxps://sso-verify-corp[.]example/login", "https://www.microsoft.com/help"])
        trigger = await deliver(stack, raw)
        before = estate_hash_without((await stack.tools.lab_state()).tools, "cases")
        handle = await start(stack, trigger)
        waiting = await stack.wait_for(handle, awaiting)
        pending = waiting.pending_step()
        assert pending.change.kind == "edr.isolate" and pending.change.target == f"lt-{COMPROMISED_USER}"
        s = waiting.summary
        assert s["sinkholed"] == ["sso-verify-corp.example"] and s["sinkhole_denied"] == []
        row = next(r for r in s["verdicts"] if r["domain"] == "microsoft.com")
        assert row["action"] == "report" and any("allowlist" in e for e in row["evidence"])
        assert s["compromised"] == [f"lt-{COMPROMISED_USER}"]
        case = await stack.tools.cases.get_case(s["case_id"])
        assert case.status == "open" and case.run_id == handle.id
        assert {a.kind for a in case.artefacts} == {"email", "indicators", "scan"}
        capture = await stack.tools.edr.get_capture(f"lt-{COMPROMISED_USER}")
        assert capture is not None and capture.case_id == case.id
        assert not (await stack.tools.edr.get_host(f"lt-{COMPROMISED_USER}")).isolated

        await send_decision(handle, "bob")
        done = await stack.wait_for(handle, completed)
        assert done.state == RunState.COMPLETED and done.summary["isolated"] == [f"lt-{COMPROMISED_USER}"]
        assert (await stack.tools.edr.get_host(f"lt-{COMPROMISED_USER}")).isolated
        isolate = next(st for st in done.steps if st.change.kind == "edr.isolate")
        assert isolate.decisions[0].decision.approver == "bob"
        assert [st for st in done.steps if st.state == StepState.DENIED] == []

        report = await roll_back(stack, handle.id)
        assert report.state == "rolled_back", report
        after = await stack.tools.lab_state()
        # Everything is as it was, except that the case (evidence) stays, closed.
        assert estate_hash_without(after.tools, "cases") == before
        assert (await stack.tools.cases.get_case(case.id)).status == "closed"


async def test_the_same_message_twice_runs_once(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        for message in await stack.tools.mailbox.list_messages(status="unprocessed"):
            await stack.tools.mailbox.mark_processed(message.id)
        raw = make_eml("alice@corp.example", ["http://parcel-fees.example/pay"])
        trigger = await deliver(stack, raw)
        run_id = trigger.run_id()

        poll = await stack.start(PollMailbox.run, MailboxPoll())
        await closed(poll)
        first = await poll.result()
        stack.started.append(stack.client.get_workflow_handle(run_id))
        assert first.started == [run_id] and first.already == []
        assert (await stack.tools.mailbox.get_message(trigger.mailbox_id)).status == "processed"

        again = await stack.tools.mailbox.deliver(raw)  # forwarded a second time
        assert again.id == trigger.mailbox_id and not again.created
        await stack.tools.mailbox.mark_unprocessed(trigger.mailbox_id)
        poll2 = await stack.start(PollMailbox.run, MailboxPoll())
        await closed(poll2)
        second = await poll2.result()
        assert second.started == [] and second.already == [run_id]
        assert (await stack.tools.mailbox.get_message(trigger.mailbox_id)).status == "processed"
        with pytest.raises(WorkflowAlreadyStartedError):
            await start(stack, trigger)
        status = await stack.wait_for(stack.client.get_workflow_handle(run_id), completed)
        assert status.state == RunState.COMPLETED and status.summary["sinkholed"] == ["parcel-fees.example"]


async def test_a_new_message_reusing_a_handled_message_id_gets_its_own_run(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        for message in await stack.tools.mailbox.list_messages(status="unprocessed"):
            await stack.tools.mailbox.mark_processed(message.id)
        handled = await deliver(stack, make_eml("alice@corp.example", ["http://parcel-fees.example/pay"],
                                                message_id="<reused@notify-mailer.example>"))
        poll = await stack.start(PollMailbox.run, MailboxPoll())
        await closed(poll)
        assert (await poll.result()).started == [handled.run_id()]
        stack.started.append(stack.client.get_workflow_handle(handled.run_id()))

        # The attacker sends a new lure with the same Message-ID: it is a new message, and it runs.
        lure = await deliver(stack, make_eml("alice@corp.example", ["http://other-lure.example/x"],
                                             message_id="<reused@notify-mailer.example>"))
        assert lure.mailbox_id != handled.mailbox_id and lure.run_id() != handled.run_id()
        assert phishing_run_id(lure.sha256, lure.mailbox_id) == lure.run_id()
        poll2 = await stack.start(PollMailbox.run, MailboxPoll())
        await closed(poll2)
        assert (await poll2.result()).started == [lure.run_id()]
        status = await stack.wait_for(stack.client.get_workflow_handle(lure.run_id()), completed)
        assert status.summary["sinkholed"] == ["other-lure.example"]
        assert status.summary["message_id"] == "reused@notify-mailer.example"  # still searchable


async def test_a_message_with_too_many_domains_holds_for_a_human(time_env, tmp_path):
    policy = POLICY.replace("per_run = 20", "per_run = 2", 1)  # dns.sinkhole only
    async with running_stack(time_env.client, tmp_path, policy) as stack:
        raw = make_eml("nobody@elsewhere.example", ["http://a-lure.example/1", "http://b-lure.example/2",
                                                    "http://c-lure.example/3", "https://docs.google.com/x"])
        handle = await start(stack, await deliver(stack, raw))
        waiting = await stack.wait_for(handle, awaiting)
        step = waiting.pending_step()
        assert step.change.kind == "dns.sinkhole" and step.change.target == "c-lure.example"
        assert [v.guardrail for v in step.verdicts] == ["per_run_limit"]
        assert await stack.tools.dns.get_sinkhole("c-lure.example") is None
        await send_decision(handle, "bob")
        done = await stack.wait_for(handle, completed)
        assert done.state == RunState.COMPLETED
        assert done.summary["sinkholed"] == ["a-lure.example", "b-lure.example", "c-lure.example"]
        assert done.summary["sinkhole_denied"] == []  # google.com is allowlisted: reported, never proposed
        assert done.summary["unmapped_recipients"] == ["nobody@elsewhere.example"]
        assert await stack.tools.dns.get_sinkhole("google.com") is None


async def test_a_refused_hold_stops_sinkholing_the_rest(time_env, tmp_path):
    policy = POLICY.replace("per_run = 20", "per_run = 1", 1)
    async with running_stack(time_env.client, tmp_path, policy) as stack:
        raw = make_eml("nobody@elsewhere.example",
                       ["http://a-lure.example/1", "http://b-lure.example/2", "http://c-lure.example/3"])
        handle = await start(stack, await deliver(stack, raw))
        await stack.wait_for(handle, awaiting)
        await send_decision(handle, "bob", False, "ok")
        done = await stack.wait_for(handle, completed)
        assert done.state == RunState.COMPLETED
        assert done.summary["sinkholed"] == ["a-lure.example"]
        assert done.summary["sinkhole_skipped"] == ["c-lure.example"]
        assert [s.change.kind for s in done.steps].count("dns.sinkhole") == 2


async def test_sinkholes_telemetry_and_watch_revert_when_their_ttl_ends(fresh_time_env, tmp_path):
    # A server of its own: skipping 30 days must not depend on what other tests left behind.
    async with running_stack(fresh_time_env.client, tmp_path, POLICY) as stack:
        raw = make_eml("alice@corp.example", ["http://parcel-fees.example/pay"])
        handle = await start(stack, await deliver(stack, raw))
        status = await stack.wait_for(handle, completed)
        assert status.state == RunState.COMPLETED
        hosts = await hosts_of(stack, "alice")
        assert await stack.tools.dns.get_sinkhole("parcel-fees.example") is not None
        assert (await stack.tools.edr.get_host(hosts[0])).telemetry == "elevated"
        final = await handle.result()
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED  # not held open by TTLs
        expiry = stack.client.get_workflow_handle(expiry_id(handle.id), result_type=ExpiryPlan)
        stack.started.append(expiry)
        await skip_time(fresh_time_env, timedelta(days=31))  # skips 30 days of timers
        await expiry.result()
        final = apply_expiries(final, list(stack.ledger.audit_rows(handle.id)))  # what `handrail show` prints
        assert await stack.tools.dns.get_sinkhole("parcel-fees.example") is None
        for host in hosts:
            assert (await stack.tools.edr.get_host(host)).telemetry == "normal"
        assert await stack.tools.siem.get_watch("user", "alice") is None
        assert len(await stack.tools.takedown.list_submissions()) == 1  # no TTL: a takedown stays
        by_kind = {st.change.kind: st.state for st in final.steps}
        assert by_kind["dns.sinkhole"] == by_kind["edr.set_telemetry"] == by_kind["siem.watch"] == StepState.EXPIRED
        assert by_kind["takedown.submit"] == StepState.APPLIED
        assert final.summary["expiries_pending"] == 0


async def test_a_malformed_or_missing_message_is_rejected_with_the_reason(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        bad = await deliver(stack, b"X-Scanner: flagged\r\n\r\nnot really an e-mail\r\n")
        handle = await start(stack, bad)
        result = await handle.result()
        assert result.state == RunState.REJECTED
        assert "malformed" in result.error and "usual headers" in result.error
        assert result.steps == [] and stack.ledger.changes_for_run(handle.id) == []
        missing = await start(stack, PhishingTrigger(mailbox_id="MSG-999999", message_id="<gone@x.example>"))
        result = await missing.result()
        assert result.state == RunState.REJECTED and "MSG-999999" in result.error


@needs_fixtures
async def test_no_extracted_url_is_ever_requested(time_env, tmp_path, monkeypatch):
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def loopback(host) -> bool:
        try:
            return ipaddress.ip_address(str(host).strip("[]")).is_loopback
        except ValueError:
            return str(host) == "localhost"

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not host.startswith("/") and not loopback(host):
            attempts.append(f"connect {host}")
            raise ConnectionRefusedError(f"test guard: no connection to {host}")
        return real_connect(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host is not None and not loopback(host):
            attempts.append(f"resolve {host}")
            raise socket.gaierror(f"test guard: no resolving {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        trigger = await sample_trigger(stack, "sample-44.eml")  # 127 URLs
        handle = await start(stack, trigger)
        status = await stack.wait_for(handle, completed, timeout=40)
        assert status.state == RunState.COMPLETED, status.error
        parsed = load_evidence(open_store(stack.settings), status.summary["parse_ref"])
        assert len(parsed["urls"]) > 100 and status.summary["counts"]["urls"] == len(parsed["urls"])
        assert len(status.summary["urls"]) == 20  # the workflow gets the first N only
        calls = await stack.tools.lab_calls(limit=10_000)
        tools = {"mailbox", "dns", "edr", "siem", "takedown", "cases", "cmdb", "iam", "alerts"}
        for call in calls:
            assert call.path.split("/")[1] in tools, call.path
            assert "://" not in call.path
        hosts = {url.split("/")[2] for url in parsed["urls"]}
        asked = {call.path.split("/", 3)[-1] for call in calls if call.path.startswith("/dns/resolve/")}
        assert not asked & hosts  # not even the lab's resolver was asked about a link host
    assert attempts == []


# -- judgement: verdicts, the popular list, wrappers, IP links (our own sample mail) ---------
async def own_sample_trigger(stack, name: str) -> PhishingTrigger:
    from lab.seed import SAMPLES_DIR

    digest = hashlib.sha256((SAMPLES_DIR / name).read_bytes()).hexdigest()
    message = next(m for m in await stack.tools.mailbox.list_messages() if m.sha256 == digest)
    return PhishingTrigger(mailbox_id=message.id, message_id=message.message_id, requested_by="alice")


async def test_our_lookalike_sample_sinkholes_the_fake_and_reports_the_brand(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await start(stack, await own_sample_trigger(stack, "lookalike-login.eml"))
        status = await stack.wait_for(handle, completed)
        assert status.state == RunState.COMPLETED, status.error
        s = status.summary
        assert s["sinkholed"] == ["paypa1-login-verify.example"]
        rows = {r["domain"]: r for r in s["verdicts"]}
        assert rows["paypa1-login-verify.example"]["verdict"] == "high"
        assert any("look-alike of paypal" in e for e in rows["paypa1-login-verify.example"]["evidence"])
        assert rows["paypal.com"]["action"] == "report"
        assert await stack.tools.dns.get_sinkhole("paypal.com") is None
        [submission] = await stack.tools.takedown.list_submissions()
        assert submission.domain.endswith("paypa1-login-verify.example")


async def test_a_popular_domain_holds_for_a_human_with_its_rank_whatever_the_mode(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:  # dns.sinkhole is `logged`
        raw = make_eml("alice@corp.example", ["https://www.dropbox.com/"])  # the site itself: no page to block
        handle = await start(stack, await deliver(stack, raw))
        waiting = await stack.wait_for(handle, awaiting)
        step = waiting.pending_step()
        assert step.change.kind == "dns.sinkhole" and step.change.target == "dropbox.com"
        [verdict] = [v for v in step.verdicts if v.guardrail == "popular_domain"]
        assert "rank 22" in verdict.reason and "never automatic" in verdict.reason
        await send_decision(handle, "bob", approve=False, reason="real")
        done = await stack.wait_for(handle, completed)
        assert done.state == RunState.COMPLETED and done.summary["sinkholed"] == []
        assert await stack.tools.dns.get_sinkhole("dropbox.com") is None


async def test_a_phishing_page_on_a_popular_platform_is_blocked_on_the_proxy_and_the_site_stays(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:  # proxy.block is `guarded`
        page = "https://storage.googleapis.com/quota-fix-7781/index.html"
        trigger = await deliver(stack, make_eml("alice@corp.example", [page + "#alice@corp.example"]))
        before = (await stack.tools.lab_state()).hash
        handle = await start(stack, trigger)
        done = await stack.wait_for(handle, completed)  # a customer's page on a platform: no human needed
        assert done.state == RunState.COMPLETED, done.error
        assert done.summary["pages_blocked"] == [page] and done.summary["sinkholed"] == []
        [row] = [r for r in done.summary["verdicts"] if r["domain"] == "storage.googleapis.com"]
        assert row["action"] == "block_url" and row["pages"] == [page]
        [step] = [s for s in done.steps if s.change.kind == "proxy.block"]
        assert step.state == StepState.APPLIED and step.change.params["confidence"] == "high"
        assert (await stack.tools.proxy.get_indicator(page)).blocked
        assert not (await stack.tools.proxy.get_indicator("storage.googleapis.com")).blocked
        assert await stack.tools.dns.get_sinkhole("storage.googleapis.com") is None
        assert all(s.change.kind != "takedown.submit" for s in done.steps)  # a takedown is the platform's call

        report = await roll_back(stack, handle.id)
        assert report.state == "rolled_back" and not report.failed
        assert not (await stack.tools.proxy.get_indicator(page)).blocked
        assert (await stack.tools.lab_state()).hash == before


async def test_a_phishing_page_on_a_popular_sites_own_host_waits_for_a_human(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        page = "https://www.dropbox.com/s/q1w2e3/invoice.html"
        handle = await start(stack, await deliver(stack, make_eml("alice@corp.example", [page])))
        waiting = await stack.wait_for(handle, awaiting)
        step = waiting.pending_step()
        assert step.change.kind == "proxy.block" and step.change.target == page  # the page, never dropbox.com
        [verdict] = step.verdicts
        assert verdict.guardrail == "confidence" and "not a user-content platform" in verdict.reason
        await send_decision(handle, "bob", approve=True)
        done = await stack.wait_for(handle, completed)
        assert done.summary["pages_blocked"] == [page]
        assert (await stack.tools.proxy.get_indicator(page)).blocked
        assert await stack.tools.dns.get_sinkhole("dropbox.com") is None


async def test_without_a_top_sites_list_every_sinkhole_holds_and_the_run_says_why(time_env, tmp_path):
    policy = POLICY.replace(f'path = "{TOP_SITES}"', f'path = "{tmp_path / "missing.csv"}"', 1)
    async with running_stack(time_env.client, tmp_path, policy) as stack:
        handle = await start(stack, await own_sample_trigger(stack, "mixed-brand.eml"))
        waiting = await stack.wait_for(handle, awaiting)
        step = waiting.pending_step()
        assert step.change.target == "docusign-envelope-review.example"
        assert any(v.guardrail == "popular_domain" and "cannot be read" in v.reason for v in step.verdicts)
        assert "cannot be read" in waiting.summary["ranking_problem"]
        await send_decision(handle, "bob", approve=True)
        takedown = await stack.wait_for(
            handle, lambda s: awaiting(s) and s.pending_step().change.kind == "takedown.submit")
        assert [v.guardrail for v in takedown.pending_step().verdicts] == ["popular_domain"]
        await send_decision(handle, "bob", approve=True)
        done = await stack.wait_for(handle, completed)
        assert done.summary["sinkholed"] == ["docusign-envelope-review.example"]


async def test_a_medium_verdict_holds_and_a_refusal_does_not_stop_the_rest(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        msg = EmailMessage()  # a call to action, but to the sender's own domain: evidence is thin
        msg["From"] = "news@parcel-news.example"
        msg["To"] = "alice@corp.example"
        msg["Subject"] = "Weekly digest"
        msg["Message-ID"] = "<digest-1@parcel-news.example>"
        msg.set_content("x")
        msg.add_alternative('<p><a href="https://parcel-news.example/a">Confirm your subscription</a></p>'
                            '<p><a href="https://paypa1-billing.example/x">Verify now</a></p>', subtype="html")
        handle = await start(stack, await deliver(stack, msg.as_bytes()))
        waiting = await stack.wait_for(handle, awaiting)
        step = waiting.pending_step()
        assert step.change.target == "parcel-news.example"
        assert [v.guardrail for v in step.verdicts] == ["confidence"] and "medium" in step.verdicts[0].reason
        assert await stack.tools.dns.get_sinkhole("paypa1-billing.example") is not None  # high went first
        await send_decision(handle, "bob", approve=False, reason="legit")
        done = await stack.wait_for(handle, completed)
        assert done.summary["sinkholed"] == ["paypa1-billing.example"]
        assert done.summary["sinkhole_denied"] == ["parcel-news.example"]


async def test_a_bare_ip_link_becomes_a_held_egress_block(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await start(stack, await own_sample_trigger(stack, "html-only.eml"))
        waiting = await stack.wait_for(handle, awaiting)
        step = waiting.pending_step()
        assert step.change.kind == "firewall.egress_block" and step.change.target == "192.0.2.45"
        assert waiting.summary["sinkholed"] == ["parcel-redelivery-fee.example"]
        assert "call-to-action" in step.change.params["evidence"]
        await send_decision(handle, "bob", approve=True)
        done = await stack.wait_for(handle, completed)
        assert done.summary["egress_blocked"] == ["192.0.2.45"]
        assert "192.0.2.45" in {e.value for e in await stack.tools.firewall.egress_list()}
