"""A gated one-step run costs few round trips: its first state comes with its start, a step no
person need decide is one activity (its check applies it), and its last audit write rides in its
last workflow task (a local activity), not an activity of its own."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType

from handrail.gate.expiry import expiry_id
from handrail.gate.models import EgressBlockTrigger, RunState
from tests.support import make_policy, running_stack
from tests.test_replay import replay
from workflows.egress_block import RUNBOOK, EgressBlock
from workflows.gate import REQUESTER_KEY, RUNBOOK_KEY, STATE_KEY, start_attributes

pytestmark = pytest.mark.workflow


def trigger(ip: str) -> EgressBlockTrigger:
    return EgressBlockTrigger(ip=ip, reason="round trips", requested_by="alice")


def kinds(history) -> list[str]:
    return [EventType.Name(e.event_type) for e in history.events]


async def test_a_run_started_with_its_attributes_upserts_only_its_final_state(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded")) as stack:
        handle = await stack.start(EgressBlock.run, trigger("203.0.113.71"),
                                   search_attributes=start_attributes(RUNBOOK, "alice"))
        assert (await handle.result()).state == RunState.COMPLETED
        history = await handle.fetch_history()
        events = kinds(history)
        assert events.count("EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES") == 1  # completed, nothing else
        assert events.count("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED") == 1  # check_step, which applied it
        assert events.count("EVENT_TYPE_MARKER_RECORDED") == 1  # the final audit write
        attributes = (await handle.describe()).typed_search_attributes
        assert attributes.get(STATE_KEY) == RunState.COMPLETED.value
        assert attributes.get(RUNBOOK_KEY) == RUNBOOK and attributes.get(REQUESTER_KEY) == "alice"
        audit = [row["event"] for row in stack.ledger.audit_rows(handle.id)]
        # The judgement is audited before the change, in the transaction of the change's intent.
        assert audit[:4] == ["run.started", "step.requested", "run.requester_proven", "guardrails.evaluated"]
        assert audit[-1] == "run.finished"
        assert stack.ledger.verify().ok
        # The firewall is asked twice: the before-state, then the write, whose answer (the entry
        # it now holds) is the after-state. No third call to read back what it just said.
        calls = [(c.method, c.path) for c in await stack.tools.lab_calls() if "203.0.113.71" in c.path
                 or (c.method == "POST" and c.path == "/firewall/egress")]
        assert calls == [("GET", "/firewall/egress/203.0.113.71"), ("POST", "/firewall/egress")]
        record = stack.ledger.change(f"{handle.id}/s01-firewall.egress_block")
        assert record.before == {"blocked": False, "comment": None}
        assert record.after == {"blocked": True, "comment": "round trips"}
        await replay([handle])


async def test_a_run_started_without_attributes_still_gets_them(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded")) as stack:
        handle = await stack.start(EgressBlock.run, trigger("203.0.113.72"))
        assert (await handle.result()).state == RunState.COMPLETED
        events = kinds(await handle.fetch_history())
        assert events.count("EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES") == 2
        attributes = (await handle.describe()).typed_search_attributes
        assert attributes.get(RUNBOOK_KEY) == RUNBOOK and attributes.get(REQUESTER_KEY) == "alice"
        assert attributes.get(STATE_KEY) == RunState.COMPLETED.value
        assert [row["event"] for row in stack.ledger.audit_rows(handle.id)][-1] == "run.finished"
        await replay([handle])


async def test_a_run_with_a_ttl_completes_at_once_and_hands_its_ttl_on(time_env, tmp_path):
    """A run with a TTL ends like any other (its final audit write rides with its last task); the
    expiry is the `expiry-<run>` workflow's, so the run's history stays as short as a plain one's."""
    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded")) as stack:
        handle = await stack.start(EgressBlock.run, EgressBlockTrigger(
            ip="203.0.113.73", reason="round trips", requested_by="alice", ttl_s=3600),
            search_attributes=start_attributes(RUNBOOK, "alice"))
        result = await handle.result()
        assert result.steps[0].state.value == "applied" and result.summary["expiry_workflow"] == expiry_id(handle.id)
        audit = [row["event"] for row in stack.ledger.audit_rows(handle.id)]
        assert audit[-1] == "run.finished"
        stack.started.append(stack.client.get_workflow_handle(expiry_id(handle.id)))
        await replay([handle])
