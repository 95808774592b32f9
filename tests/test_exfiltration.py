"""The data exfiltration runbook: classification (unit) and every branch (time-skipping)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from handrail.gate.expiry import expiry_id
from handrail.gate.models import RollbackTrigger, RunState, StepState
from handrail.gate.policy import parse_policy
from handrail.runbooks.exfiltration import (
    AlertFacts,
    DlpPoll,
    ExfilSettings,
    ExfiltrationTrigger,
    FollowUpTrigger,
    History,
    Rule,
    SettingsError,
    classify,
    classify_as_begun,
    destination_domain,
    follow_up_id,
    is_internal,
    parse_settings,
    run_id_for,
)
from tests.support import make_decision, running_stack, send_decision, skip_time, terminate_between_calls
from workflows.exfiltration import ExfiltrationFollowUp, ExfiltrationResponse, PollDlp
from workflows.rollback import RollbackRun, rollback_id

POLICY = (Path(__file__).resolve().parents[1] / "policy.toml").read_text()
COMPROMISED = ["lt-cjones", "lt-enguyen", "lt-lwalker", "srv-app-01"]  # planted in the lab seed


def _alert(channel: str, detector: str, **kw) -> AlertFacts:
    return AlertFacts(id="DLP-1", user="u", host="h", channel=channel, detector=detector, **kw)


# -- unit: the pure classification and the settings -------------------------------------------
@pytest.mark.unit
def test_shipped_rules_classify_deterministically():
    rules = parse_settings(parse_policy(POLICY).settings).rules
    slip = {"severity": "medium", "match_count": 4}
    assert classify(rules, _alert("email", "account_numbers", **slip), History()).verdict == "inadvertent"
    assert classify(rules, _alert("gateway", "encrypted_archive"), History()).verdict == "malicious"
    assert classify(rules, _alert("usb", "encrypted_archive"), History()).verdict == "analyst"
    # a whole list of account numbers, or a high-severity alert, is no slip: an analyst looks
    payroll = _alert("email", "account_numbers", severity="high", match_count=214,
                     destination="personal.mail@gmail.example")
    assert classify(rules, payroll, History()).verdict == "analyst"
    assert classify(rules, _alert("email", "account_numbers", severity="medium", match_count=21),
                    History()).verdict == "analyst"
    # history: a user who keeps mailing account numbers is no longer "inadvertent" by rule
    assert classify(rules, _alert("email", "account_numbers", **slip), History(prior_alerts=3)).verdict == "analyst"
    # a user with a malicious verdict before always gets an analyst's look
    result = classify(rules, _alert("email", "account_numbers", **slip), History(prior_alerts=1, prior_malicious=1))
    assert result.verdict == "analyst" and result.rule == 0 and "malicious DLP verdict before" in result.why


@pytest.mark.unit
@pytest.mark.parametrize(("destination", "domain"), [
    ("Bob@Partner.Example", "partner.example"), ("https://files.share.example:8443/u/7", "files.share.example"),
    ("https://user@cdn.share.example/x", "cdn.share.example"), ("<ops@corp.example>", "corp.example"),
    ("USB SanDisk 64GB", ""), ("", ""), ("Partner <x@partner.example>", "partner.example"),
    # the user chose the destination: a spelling readers disagree on names no domain
    ("https://evil.example\\@partner.example/", ""), ("a@partner.example@evil.example", ""),
    ('"v@partner.example"@evil.example', "evil.example"),
    ("https://partner.example.evil.example/", "partner.example.evil.example"),
    # several recipients: one domain only when they all share it; else none (never the first one's)
    ("me@corp.example, x@evil.example", ""), ("me@corp.example; x@evil.example", ""),
    ("Me <me@corp.example>, Ops <ops@CORP.example>", "corp.example"),
])
def test_the_destination_domain_is_read_from_an_address_or_a_url(destination, domain):
    assert destination_domain(destination) == domain


@pytest.mark.unit
def test_an_external_recipient_after_an_internal_one_is_not_internal():
    """`internal = true` trusts data that stayed inside: a second, outside recipient means it left."""
    own = ["corp.example"]
    rules = [Rule(internal=True, verdict="inadvertent"), Rule(internal=False, verdict="malicious")]
    mixed = _alert("email", "account_numbers", destination="me@corp.example, drop@evil.example")
    assert not is_internal("me@corp.example, drop@evil.example", own)
    assert classify(rules, mixed, History(), own).verdict == "malicious"
    inside = _alert("email", "account_numbers", destination="a@corp.example, b@hr.corp.example")
    assert classify(rules, inside, History(), own).verdict == "inadvertent"  # every recipient inside
    partner = [Rule(destination=["partner.example"], verdict="inadvertent")]
    assert classify(partner, _alert("email", "other", destination="a@partner.example, b@evil.example"),
                    History()).verdict == "analyst"  # a destination rule trusts every recipient or none
    assert classify(rules, _alert("email", "account_numbers", destination="a@corp.example"), History(),
                    own).verdict == "inadvertent"


@pytest.mark.unit
def test_destination_and_match_conditions():
    rules = [Rule(destination=["partner.example"], max_matches=10, verdict="inadvertent"),
             Rule(destination="*", min_matches=1000, verdict="malicious")]
    assert classify(rules, _alert("email", "other", destination="a@eu.partner.example", match_count=3),
                    History()).verdict == "inadvertent"
    assert classify(rules, _alert("email", "other", destination="a@notpartner.example", match_count=3),
                    History()).verdict == "analyst"
    assert classify(rules, _alert("gateway", "other", destination="https://x.example/u", match_count=5000),
                    History()).verdict == "malicious"
    assert "destination=['partner.example'] and max_matches=10" in rules[0].describe()


@pytest.mark.unit
def test_bad_settings_are_one_clear_sentence():
    with pytest.raises(SettingsError, match=r"settings.exfiltration.rules.0.verdict"):
        parse_settings({"exfiltration": {"rules": [{"channel": "email", "verdict": "maybe"}]}})
    with pytest.raises(SettingsError, match="approval_timeout"):
        parse_settings({"exfiltration": {"question_timeout": "4h"}})
    with pytest.raises(SettingsError, match="monitoring_ttl"):
        parse_settings({"exfiltration": {"monitoring_ttl": "soon"}})
    with pytest.raises(SettingsError, match="unknwn"):
        parse_settings({"exfiltration": {"unknwn": 1}})


# -- workflow helpers ----------------------------------------------------------------------------
def policy(**replace: str) -> str:
    text = POLICY
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


async def start_alert(stack, alert_id: str):
    trigger = ExfiltrationTrigger(alert_id=alert_id, requested_by="dlp-poller")
    return await stack.start(ExfiltrationResponse.run, trigger,
                             id=f"{run_id_for(alert_id)}-{uuid.uuid4().hex[:6]}")


async def start_follow_up(stack, host: str):
    return await stack.start(ExfiltrationFollowUp.run, FollowUpTrigger(host=host, parent_run="p", parent_alert="DLP-X",
                                                                       indicators=["185.243.115.84"]),
                             id=f"fu-{host}-{uuid.uuid4().hex[:6]}")


def waiting_on(kind: str):
    return lambda s: (p := s.pending_step()) is not None and p.change.kind == kind


async def decide(stack, handle, kind: str, approver: str, approve: bool, reason: str = "") -> None:
    status = await stack.wait_for(handle, waiting_on(kind))
    step = status.pending_step()
    await handle.signal("decide", make_decision(approver, approve, step.step_id, reason, status))


def done(s) -> bool:
    return s.state not in (RunState.RUNNING, RunState.AWAITING_APPROVAL)


async def terminate(stack, ids: list[str]) -> None:
    for rid in ids:
        await terminate_between_calls(stack.client.get_workflow_handle(rid))


def kinds(status) -> list[str]:
    return [s.change.kind for s in status.steps]


# -- branches --------------------------------------------------------------------------------------
@pytest.mark.workflow
async def test_inadvertent_alert_enrolls_training_without_an_analyst(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await start_alert(stack, "DLP-0008")  # email + account_numbers, medium, 4 of them
        status = await stack.wait_for(handle, done)
        assert status.state == RunState.COMPLETED, status.error
        assert kinds(status) == ["training.enroll", "dlp.mark_processed"]
        assert status.summary["classification"]["verdict"] == "inadvertent"
        assert status.summary["classification"]["by"] == "rule"
        assert "a few account numbers" in status.summary["classification"]["why"]
        assert await stack.tools.training.get_enrollment("rchen", "data-handling") is not None
        assert not any(s.decisions for s in status.steps)
        assert "case_id" not in status.summary


@pytest.mark.workflow
async def test_a_rule_on_the_companys_own_domains_decides_inside_the_run(time_env, tmp_path):
    first = '  { internal = true, verdict = "inadvertent", why = "it stayed inside" },\n'
    inside = policy(**{'own_domains = ["corp.example", "handrail-corp.example"]': 'own_domains = ["home.example"]',
                       "rules = [\n": "rules = [\n" + first})
    async with running_stack(time_env.client, tmp_path, inside) as stack:
        status = await stack.wait_for(await start_alert(stack, "DLP-0008"), done)  # to assistant@home.example
        assert status.summary["classification"]["why"] == "rule 1: it stayed inside", status.summary


@pytest.mark.workflow
async def test_malicious_alert_opens_case_alerts_and_monitors_a_clean_host(fresh_time_env, tmp_path):
    async with running_stack(fresh_time_env.client, tmp_path, POLICY) as stack:
        handle = await start_alert(stack, "DLP-0005")  # gateway + encrypted_archive, lt-ballen (clean)
        status = await stack.wait_for(handle, done)
        assert status.state == RunState.COMPLETED, status.error
        assert status.summary["classification"] == {
            "verdict": "malicious", "by": "rule",
            "why": "rule 3: an encrypted archive sent out through the web gateway"}
        assert kinds(status) == ["cases.open", "edr.set_telemetry", "dlp.mark_processed"]
        assert (await stack.tools.dlp.get_alert("DLP-0005")).status == "processed"
        assert (await stack.tools.edr.get_host("lt-ballen")).telemetry == "verbose"
        assert status.summary["scan"]["verdict"] == "clean"
        case = await stack.tools.cases.get_case(status.summary["case_id"])
        texts = " | ".join(n.text for n in case.notes)
        assert "Classified malicious" in texts and "scanned clean" in texts
        alerts = await stack.tools.alerts.list_alerts()
        assert any("Suspected data exfiltration by ballen" in a.title for a in alerts)
        await handle.result()  # the run completes; its expiry workflow holds the monitoring TTL (7d)
        await skip_time(fresh_time_env, timedelta(days=7, hours=1))
        await stack.client.get_workflow_handle(expiry_id(handle.id)).result()
        assert (await stack.tools.edr.get_host("lt-ballen")).telemetry == "normal"


@pytest.mark.workflow
async def test_analyst_denial_means_inadvertent(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await start_alert(stack, "DLP-0003")  # usb + encrypted_archive: no rule
        await decide(stack, handle, "exfiltration.classify_malicious", "dlp-poller", True)  # requester: refused
        await decide(stack, handle, "exfiltration.classify_malicious", "bob", False, "his own backup, known case")
        status = await stack.wait_for(handle, done)
        assert status.state == RunState.COMPLETED, status.error
        assert status.rejected_decisions  # separation of duties held (dlp-poller is no policy user either)
        assert kinds(status) == ["exfiltration.classify_malicious", "training.enroll", "dlp.mark_processed"]
        assert status.steps[0].state == StepState.DENIED
        assert status.summary["classification"]["by"] == "analyst"
        assert "inadvertent by bob: his own backup" in status.summary["classification"]["why"]
        assert await stack.tools.training.get_enrollment("kcarter", "data-handling") is not None


@pytest.mark.workflow
async def test_unanswered_question_times_out_to_the_policy_verdict(fresh_time_env, tmp_path):
    async with running_stack(fresh_time_env.client, tmp_path, POLICY) as stack:
        handle = await start_alert(stack, "DLP-0007")  # email + other: no rule; lt-jmartin is clean
        status = await stack.result(handle)  # time skips over 4h + 4h escalation, then the 7d TTL
        assert status.state == RunState.COMPLETED, status.error
        assert status.summary["classification"]["by"] == "timeout"
        assert status.summary["classification"]["verdict"] == "malicious"
        assert status.steps[0].escalated and status.steps[0].state == StepState.DENIED
        assert "timed out" in " ".join(status.summary["decision_path"])
        assert status.summary["case_id"]


@pytest.mark.workflow
async def test_unanswered_question_times_out_to_an_inadvertent_verdict_when_the_policy_says(fresh_time_env, tmp_path):
    # a server of its own: another stack's runs (their notification timers) would stall its time skipping
    other = policy(**{'on_unclassified_timeout = "malicious"': 'on_unclassified_timeout = "inadvertent"'})
    async with running_stack(fresh_time_env.client, tmp_path, other) as stack:
        status = await stack.result(await start_alert(stack, "DLP-0007"))
        assert status.summary["classification"]["verdict"] == "inadvertent"
        assert kinds(status) == ["exfiltration.classify_malicious", "training.enroll", "dlp.mark_processed"]


@pytest.mark.workflow
async def test_compromise_isolation_approved_evidence_proliferation_and_rollback(time_env, tmp_path):
    capped = policy(**{"max_follow_ups = 10": "max_follow_ups = 2"})
    async with running_stack(time_env.client, tmp_path, capped) as stack:
        handle = await start_alert(stack, "DLP-0011")  # cjones, gateway + account_numbers: no rule
        await decide(stack, handle, "exfiltration.classify_malicious", "bob", True)
        status = await stack.wait_for(handle, waiting_on("edr.isolate"))
        assert status.pending_step().change.target == "lt-cjones"
        await decide(stack, handle, "edr.isolate", "alice", True)
        status = await stack.wait_for(handle, done)
        followups = [follow_up_id("DLP-0011", h) for h in ("lt-enguyen", "lt-lwalker")]  # cap 2: srv-app-01 reported
        try:
            assert status.state == RunState.COMPLETED, status.error
            assert status.summary["classification"]["why"] == "classified malicious by bob"
            assert status.summary["isolation"]["approved_by"] == ["alice"]
            assert "approved by alice" in " ".join(status.summary["decision_path"])
            assert (await stack.tools.edr.get_host("lt-cjones")).isolated
            # proliferation: exactly the planted hosts, each in the case and with a run of its own
            assert sorted(status.summary["similar_hosts"]) == sorted(h for h in COMPROMISED if h != "lt-cjones")
            assert sorted(status.summary["follow_up_runs"]) == sorted(followups)
            assert status.summary["follow_ups_not_started"] == ["srv-app-01"]
            assert "over the cap of 2" in " ".join(status.summary["decision_path"])
            case = await stack.tools.cases.get_case(status.summary["case_id"])
            refs = {a.ref for a in case.artefacts}
            evidence = status.summary["evidence"][0]
            assert {evidence["memory"], evidence["disk"]} <= refs
            assert set(status.summary["similar_hosts"]) <= refs
            alerts = await stack.tools.alerts.list_alerts()
            assert any(a.priority == "P1" and "lt-cjones (isolated)" in a.title for a in alerts)
            child = stack.client.get_workflow_handle(followups[0])
            child_status = await stack.wait_for(child, waiting_on("edr.isolate"))
            assert child_status.summary["parent_alert"] == "DLP-0011"
            # the ledger knows who approved what
            records = {r.change.kind: r for r in stack.ledger.changes_for_run(handle.id)}
            assert records["exfiltration.classify_malicious"].approved_by == ["bob"]
            assert records["edr.isolate"].approved_by == ["alice"]

            # rollback of the completed run: isolation, monitoring and the classification undone, verified
            rollback = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="carol"),
                                         id=rollback_id(handle.id))
            # releasing the host is a change too: edr.release waits for an analyst's approval
            waiting = await stack.wait_for(rollback, lambda s: s.state == RunState.AWAITING_APPROVAL)
            assert waiting.pending_step().change.kind == "edr.release"
            await send_decision(rollback, "bob", status=waiting)
            report = await rollback.result()
            assert report.state == "rolled_back" and not report.failed
            host = await stack.tools.edr.get_host("lt-cjones")
            assert not host.isolated and host.telemetry == "normal"
            assert (await stack.tools.dlp.get_alert("DLP-0011")).status == "new"
        finally:
            await terminate(stack, followups)


@pytest.mark.workflow
async def test_follow_up_isolation_denied_still_collects_evidence(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await start_follow_up(stack, "lt-enguyen")
        await decide(stack, handle, "edr.isolate", "bob", False, "CFO's assistant, call first")
        status = await stack.wait_for(handle, done)
        assert status.state == RunState.COMPLETED, status.error
        assert status.summary["isolation"]["state"] == "denied"
        assert not (await stack.tools.edr.get_host("lt-enguyen")).isolated
        assert status.summary["evidence"][0]["memory"].startswith("ART-")
        alerts = await stack.tools.alerts.list_alerts()
        assert any(a.priority == "P1" and "lt-enguyen (NOT isolated)" in a.title for a in alerts)


@pytest.mark.workflow
async def test_isolation_is_held_for_a_production_host(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        # the CMDB says lt-lwalker is production (a second record for the same hostname)
        await stack.tools.cmdb.register_device(hostname="lt-lwalker", type="laptop", vendor="Dell",
                                               network="corp-wifi", mac="f8:bc:12:00:00:01", owner="alice",
                                               tags=["production"])
        handle = await start_follow_up(stack, "lt-lwalker")
        status = await stack.wait_for(handle, waiting_on("edr.isolate"))
        verdicts = status.pending_step().verdicts
        assert [(v.guardrail, v.outcome.value) for v in verdicts] == [("protected_tags", "hold")]
        assert "production" in verdicts[0].reason
        await decide(stack, handle, "edr.isolate", "alice", False, "production: take it to the change board")
        status = await stack.wait_for(handle, done)
        assert status.summary["isolation"]["state"] == "denied"
        assert "guardrail holds" in " ".join(status.summary["decision_path"])
        assert not (await stack.tools.edr.get_host("lt-lwalker")).isolated


@pytest.mark.workflow
async def test_blast_radius_limit_across_concurrent_runs(time_env, tmp_path):
    limited = policy(**{"per_hour = 5, ": "per_hour = 1, "})
    async with running_stack(time_env.client, tmp_path, limited) as stack:
        first = await start_follow_up(stack, "lt-enguyen")
        second = await start_follow_up(stack, "lt-lwalker")
        await decide(stack, first, "edr.isolate", "alice", True)
        await stack.wait_for(first, done)
        # a third run, started now, sees one isolation in the last hour across all runs
        third = await start_follow_up(stack, "srv-app-01")
        status = await stack.wait_for(third, waiting_on("edr.isolate"))
        verdicts = {v.guardrail: v for v in status.pending_step().verdicts}
        assert verdicts["rate_limit"].outcome.value == "hold"
        assert "limit of 1 per hour" in verdicts["rate_limit"].reason
        # the first two were checked at the same time, before either isolated: the ledger admitted
        # (reserved a place for) exactly one of them, so the limit of 1 was not passed by both
        held = []
        for handle in (first, second):
            steps = [s for s in (await stack.status(handle)).steps if s.change.kind == "edr.isolate"]
            held.append(any(v.guardrail == "rate_limit" for s in steps for v in s.verdicts))
        assert sorted(held) == [False, True]


@pytest.mark.workflow
async def test_bad_alerts_are_rejected_and_change_nothing(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        store = stack.tools._client._transport.app.state.store  # plant a malformed alert in the lab
        store.put("dlp", "alerts", "DLP-0999", {"id": "DLP-0999", "user": "mramirez", "status": "new",
                                                "channel": "email", "sample": "not an object"})
        before = (await stack.tools.lab_state(counts_only=True)).hash
        cases = {
            "DLP-0004": "unknown to the EDR",  # ws-ghost-9999
            "DLP-0009": "names no user",
            "DLP-0999": "malformed",
            "DLP-7777": "there is no DLP alert",
            "bad id!": "is not a DLP alert id",
        }
        for alert_id, expected in cases.items():
            handle = await start_alert(stack, alert_id)
            status = await stack.wait_for(handle, done)
            assert status.state == RunState.REJECTED, (alert_id, status)
            assert expected in status.error and "nothing was changed" in status.error
            assert status.steps == [] and stack.ledger.changes_for_run(handle.id) == []
        assert (await stack.tools.lab_state(counts_only=True)).hash == before


@pytest.mark.workflow
async def test_dlp_poller_starts_one_run_per_new_alert(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        for alert in await stack.tools.dlp.list_alerts(status="new"):
            if alert.id not in ("DLP-0008", "DLP-0009"):
                await stack.tools.dlp.mark_processed(alert.id, by="tester")
        report = await stack.client.execute_workflow(PollDlp.run, DlpPoll(),
                                                     id=f"poll-{uuid.uuid4().hex[:6]}",
                                                     task_queue=stack.settings.task_queue)
        assert sorted(report.started) == ["exfiltration-DLP-0008", "exfiltration-DLP-0009"]
        for rid in report.started:
            status = await stack.wait_for(stack.client.get_workflow_handle(rid), done)
            assert status.state == (RunState.COMPLETED if rid.endswith("0008") else RunState.REJECTED)
        again = await stack.client.execute_workflow(PollDlp.run, DlpPoll(),
                                                    id=f"poll-{uuid.uuid4().hex[:6]}",
                                                    task_queue=stack.settings.task_queue)
        # DLP-0008 was handled and closed in the console; the rejected DLP-0009 is still new but runs once
        assert again.started == [] and again.already == ["exfiltration-DLP-0009"]
        assert (await stack.tools.dlp.get_alert("DLP-0008")).status == "processed"
        await terminate(stack, report.started)


@pytest.mark.unit
def test_a_rule_can_ask_whether_the_data_stayed_inside_the_company():
    rules = [Rule(internal=True, detector="account_numbers", verdict="inadvertent"),
             Rule(internal=False, min_matches=100, verdict="malicious")]
    own = ["corp.example"]
    inside = _alert("email", "account_numbers", destination="Payroll <payroll@hr.corp.example>", match_count=500)
    assert classify(rules, inside, History(), own).verdict == "inadvertent"
    for outside in ("me@gmail.example", "x@corp.example.evil.example", "https://evil.example\\@corp.example/",
                    "USB corp.example"):
        alert = _alert("email", "account_numbers", destination=outside, match_count=500)
        result = classify(rules, alert, History(), own)
        assert result.verdict == "malicious", outside
    assert "internal=True" in rules[0].describe()


@pytest.mark.unit
def test_own_domains_are_checked_and_internal_needs_them():
    with pytest.raises(ValueError, match="own_domains names none"):
        ExfilSettings(rules=[Rule(internal=True, verdict="inadvertent")])
    with pytest.raises(ValueError, match="not a lower-case domain name"):
        ExfilSettings(own_domains=["Corp.Example:25"])
    assert ExfilSettings(own_domains=["corp.example"]).own_domains == ["corp.example"]


@pytest.mark.unit
def test_a_run_begun_before_the_strict_reading_is_classified_as_its_release_did():
    """`classify_as_begun` (runs without `handrail-dlp-strict-destination`) tells the release by
    the fields its intake recorded (tests/test_replay_in_flight.py replays such runs)."""
    usb = _alert("usb", "encrypted_archive", destination="USB SanDisk 64GB")
    first = ExfilSettings.model_validate({"rules": [{"channel": "email", "verdict": "inadvertent"}]})  # 3ae8ef3
    assert classify_as_begun(first, usb, History()).why == (
        "no rule matches channel=usb, detector=encrypted_archive with 0 prior alert(s) of this user")
    assert "severity=unknown, 0 match(es) to USB SanDisk 64GB" in classify(first.rules, usb, History()).why

    mixed = _alert("email", "other", destination="drop@evil.example, jo@partner.example")
    loose = ExfilSettings.model_validate({"rules": [{"destination": ["partner.example"], "verdict": "inadvertent"}]})
    assert classify_as_begun(loose, mixed, History()).verdict == "inadvertent"  # 745235d: the last address
    assert classify(loose.rules, mixed, History()).verdict == "analyst"
    assert "to usb sandisk 64gb" in classify_as_begun(loose, usb, History()).why

    inside_first = _alert("email", "other", destination="me@corp.example, drop@evil.example")
    strict = ExfilSettings.model_validate({"own_domains": ["corp.example"],
                                           "rules": [{"internal": True, "verdict": "inadvertent"}]})
    assert classify_as_begun(strict, inside_first, History()).verdict == "inadvertent"  # 839c4e5: the first
    assert classify(strict.rules, inside_first, History(), strict.own_domains).verdict == "analyst"

