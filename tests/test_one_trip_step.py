"""A step no person need decide is one activity: its check judges it with the workflow's own
`judge` and applies it (issue 19: fewer round trips). These tests hold that shortcut to
everything the two-activity step promised: nothing changes before the requester is proven,
a hold or approve mode still waits for a person with nothing written ahead, a tool outage is
still waited out, an unknown outcome is still settled, and a retried check carries out the
decision its written-ahead intent records instead of judging again."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import ActivityEnvironment

from activities.context import WorkerContext
from activities.gate import GateActivities
from handrail.gate.judgement import judge
from handrail.gate.ledger import Ledger
from handrail.gate.models import (
    ApplyIntent,
    Change,
    ChangeRecord,
    CheckRequest,
    EgressBlockTrigger,
    Mode,
    RunState,
    StepState,
)
from lab.testing import in_process_lab
from tests.support import (
    TEST_KEYS,
    make_policy,
    running_stack,
    send_decision,
    signed_request_memo,
    skipping_seconds,
    with_test_keys,
)
from workflows.egress_block import EgressBlock

POST = "/firewall/egress"
GET = "/firewall/egress/*"


def trigger(ip: str, requested_by: str = "alice") -> EgressBlockTrigger:
    return EgressBlockTrigger(ip=ip, reason="one trip", requested_by=requested_by)


def guarded(extra: str = "") -> str:
    text = make_policy(mode="guarded")
    return text.replace('alert_priority = "P1"', 'alert_priority = "P1"\n' + extra, 1)


def scheduled_activities(history) -> list[str]:
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]


@pytest.mark.workflow
async def test_an_unproven_requester_changes_nothing_even_where_the_gate_needs_no_person(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, guarded()) as stack:
        unsigned = await stack.start(EgressBlock.run, trigger("203.0.113.81", "bob"), signed=False)
        result = await unsigned.result()
        assert result.state == RunState.REJECTED and "carries no signature from bob" in result.error
        assert result.steps[0].state == StepState.DENIED

        ip = "203.0.113.82"
        now = await stack.server_now()
        forged = signed_request_memo(EgressBlock.run, "forged-one-trip", trigger(ip, "bob"), "bob",
                                     key=TEST_KEYS["alice"], now=now)
        handle = await stack.start(EgressBlock.run, trigger(ip, "bob"), id="forged-one-trip", memo=forged,
                                   signed=False)
        assert "signed with alice's key, not bob's" in (await handle.result()).error

        edl = await stack.edl()
        assert "203.0.113.81" not in edl and ip not in edl
        assert stack.ledger.changes_for_run(unsigned.id) == [] and stack.ledger.changes_for_run(handle.id) == []
        calls = [c for c in await stack.tools.lab_calls() if c.path.startswith("/firewall/egress")]
        assert calls == []  # not even the before-state was read
        refused = [r for r in stack.ledger.audit_rows() if r["event"] == "run.request_refused"]
        assert len(refused) == 2 and stack.ledger.verify().ok


@pytest.mark.workflow
async def test_a_step_applied_by_its_check_is_judged_proven_and_audited_before_the_change(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, guarded()) as stack:
        handle = await stack.start(EgressBlock.run, trigger("203.0.113.83"))
        result = await handle.result()
        assert result.state == RunState.COMPLETED and result.steps[0].state == StepState.APPLIED
        assert scheduled_activities(await handle.fetch_history()) == ["check_step"]
        rows = list(stack.ledger.audit_rows(handle.id))
        events = [r["event"] for r in rows]
        proven = rows[events.index("run.requester_proven")]["data"]
        assert proven["how"] == "signed request" and proven["requested_by"] == "alice"
        assert proven["signer_fingerprint"].startswith("SHA256:")
        evaluated = rows[events.index("guardrails.evaluated")]["data"]
        assert evaluated["mode"] == "guarded" and evaluated["outcome"] == "allow"
        assert evaluated["verdicts"] == [v.model_dump() for v in result.steps[0].verdicts]
        # judged before the change: the judgement precedes the change's intent in the chain
        change_at = next(i for i, r in enumerate(rows) if r["event"].startswith("change."))
        assert events.index("guardrails.evaluated") < change_at
        assert stack.ledger.change(result.steps[0].change_id).mode == Mode.GUARDED
        assert stack.ledger.verify().ok


@pytest.mark.workflow
async def test_a_hold_writes_nothing_ahead_and_waits_for_a_person(time_env, tmp_path):
    policy = make_policy(mode="guarded", guardrails='{ type = "never_block" }, { type = "rate_limit", per_hour = 0 }')
    async with running_stack(time_env.client, tmp_path, policy) as stack:
        handle = await stack.start(EgressBlock.run, trigger("203.0.113.84"))
        waiting = await stack.wait_for(handle, lambda s: s.state == RunState.AWAITING_APPROVAL)
        assert waiting.steps[0].verdicts[0].guardrail == "rate_limit"
        assert stack.ledger.change(f"{handle.id}/s01-firewall.egress_block") is None
        assert "203.0.113.84" not in await stack.edl()
        await send_decision(handle, "bob")
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        assert stack.ledger.changes_for_run(handle.id)[0].approved_by == ["bob"]
        assert scheduled_activities(await handle.fetch_history()).count("apply_change") == 1


@pytest.mark.workflow
async def test_a_tool_outage_during_a_one_trip_step_is_waited_out(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, guarded('tool_alert_after = "1s"')) as stack:
        await stack.tools.lab_set_fault(POST, method="POST", error_rate=1.0, count=20)
        handle = await stack.start(EgressBlock.run, trigger("203.0.113.85"))
        waiting = await skipping_seconds(  # the round's retry backoff (1+2 s), not waited in real time
            time_env, stack.wait_for(handle, lambda s: s.state == RunState.WAITING_FOR_TOOL))
        assert "503" in waiting.summary["waiting_for_tool"]["last_error"]
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        assert "203.0.113.85" in await stack.edl()
        record = stack.ledger.change(result.steps[0].change_id)
        assert record.status == "applied" and record.approved_by == []
        events = [r["event"] for r in stack.ledger.audit_rows(handle.id)]
        assert events.count("guardrails.evaluated") == 1 and "tool.recovered" in events


@pytest.mark.workflow
async def test_a_503_after_the_firewall_accepted_is_settled_applied(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, guarded()) as stack:
        await stack.tools.lab_set_fault(POST, method="POST", error_rate=1.0, count=1, after_apply=True)
        handle = await stack.start(EgressBlock.run, trigger("203.0.113.86"))
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        record = stack.ledger.change(result.steps[0].change_id)
        assert record.status == "applied" and record.inverse is not None
        assert "203.0.113.86" in await stack.edl()


@pytest.mark.workflow
async def test_a_definite_refusal_fails_the_step_and_is_settled_not_applied(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, guarded()) as stack:
        await stack.tools.lab_set_fault(POST, method="POST", status=403)
        handle = await stack.start(EgressBlock.run, trigger("203.0.113.87"))
        result = await handle.result()
        assert result.state == RunState.FAILED, result.error
        record = stack.ledger.change(f"{handle.id}/s01-firewall.egress_block")
        assert record.status == "not_applied" and record.inverse is None
        assert "tool.waiting" not in [r["event"] for r in stack.ledger.audit_rows(handle.id)]


@pytest.mark.integration
async def test_a_retried_check_carries_out_the_intent_it_wrote_without_judging_again(tmp_path):
    """The first attempt judged the step, wrote its intent and died. The policy has since
    turned to approve mode: the retry still carries out the decision the intent records (a
    second judgement could leave a change the tool may hold with nobody settling it)."""
    policy = tmp_path / "policy.toml"
    policy.write_text(with_test_keys(make_policy(mode="approve")))
    ip = "203.0.113.88"
    async with in_process_lab(tmp_path / "home", HANDRAIL_POLICY=str(policy)) as lab:
        ledger = Ledger(lab.settings.ledger_path)
        gate = GateActivities(WorkerContext.build(lab.settings, lab.tools, ledger))
        change = Change(kind="firewall.egress_block", target=ip, params={"comment": "one trip"})
        ledger.begin_change(ChangeRecord(
            change_id="run-9/s01-firewall.egress_block", run_id="run-9", step_id="s01-firewall.egress_block",
            change=change, before={"blocked": False, "comment": None},
            inverse=Change(kind="firewall.egress_unblock", target=ip), mode=Mode.GUARDED,
            requested_by="alice", applied_at=datetime.now(timezone.utc)))
        request = CheckRequest(run_id="run-9", step_id="s01-firewall.egress_block", change=change,
                               apply=ApplyIntent(idempotency_key="run-9/s01-firewall.egress_block",
                                                 requested_by="alice"))
        first = ActivityEnvironment()
        fresh = await first.run(gate.check_step, request.model_copy(
            update={"run_id": "run-8", "step_id": "s01-firewall.egress_block",
                    "apply": request.apply.model_copy(update={"idempotency_key": "run-8/s01-firewall.egress_block"})}))
        assert not fresh.decided and fresh.record is None  # approve mode: a first attempt asks a person
        assert judge(change, fresh).needs_human and ledger.change("run-8/s01-firewall.egress_block") is None

        retry = ActivityEnvironment()
        retry.info = dataclasses.replace(retry.info, attempt=2)
        check = await retry.run(gate.check_step, request)
        assert check.decided and check.record is not None and check.record.status == "applied"
        assert check.record.mode == Mode.GUARDED  # the intent's decision, not today's policy
        assert ip in await lab.tools.firewall.edl()
        assert ledger.verify().ok
        ledger.close()
