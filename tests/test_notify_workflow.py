"""Telling approvers (issue 18, item 9) on the time-skipping server: waiting, escalation, outcome,
and a broken webhook that never fails the run nor leaks its token."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from handrail.gate.models import EgressBlockTrigger, RunState, RunStatus
from tests.support import make_decision, make_policy, running_stack
from workflows.egress_block import EgressBlock

pytestmark = pytest.mark.workflow

IP = "203.0.113.77"
STEP = "s01-firewall.egress_block"


def trigger() -> EgressBlockTrigger:
    return EgressBlockTrigger(ip=IP, reason="C2 beacon seen by EDR", requested_by="alice")


async def notices(stack, run_id: str, event: str, timeout: float = 20.0) -> list[dict]:
    """The lab sink's notifications of one event for a run, once there is one."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [n for n in (await stack.tools.lab_notifications(run_id))["notifications"] if n["event"] == event]
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"no {event} notification for {run_id}"
        await asyncio.sleep(0.05)


async def test_waiting_escalation_and_outcome_reach_the_approvers(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(timeout="1h", escalation="1h")) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        [waiting] = await notices(stack, handle.id, "waiting")
        assert waiting["kind"] == "firewall.egress_block" and waiting["target"] == IP
        assert "alice" not in waiting["recipients"] and "bob" in waiting["recipients"]  # requester never decides
        assert "carol" not in waiting["recipients"]  # the escalation group, not yet
        assert f"handrail approve {handle.id} --step {STEP} --as bob" in waiting["text"]
        assert f"handrail deny {handle.id} --step {STEP} --as bob --reason" in waiting["text"]
        assert "policy mode is approve" in waiting["why"] and waiting["deadline"]
        assert "escalates to role soc-lead" in waiting["text"]

        await time_env.sleep(timedelta(hours=1, minutes=5))
        [escalated] = await notices(stack, handle.id, "escalated")
        assert "carol" in escalated["recipients"] and "bob" in escalated["recipients"]
        assert escalated["deadline"] > waiting["deadline"]

        status = await handle.query("status", result_type=RunStatus)
        await handle.signal(EgressBlock.decide, make_decision("carol", True, None, "", status))
        assert (await handle.result()).state == RunState.COMPLETED
        [approved] = await notices(stack, handle.id, "approved")
        assert approved["outcome"] == "approved by carol"
        sent = [r["data"] for r in stack.ledger.audit_rows(handle.id) if r["event"] == "notify.sent"]
        assert sorted(d["notice"] for d in sent) == ["approved", "escalated", "waiting"]


async def test_a_denial_is_told_too(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        await notices(stack, handle.id, "waiting")
        status = await handle.query("status", result_type=RunStatus)
        await handle.signal(EgressBlock.decide, make_decision("bob", False, None, "internal scanner", status))
        assert (await handle.result()).state == RunState.DENIED
        [denied] = await notices(stack, handle.id, "denied")
        assert "denied by bob: internal scanner" in denied["outcome"]


async def test_a_timeout_is_told_and_an_automatic_step_tells_nobody(time_env, tmp_path):
    policy = make_policy(timeout="1h", escalate_to="{ roles = [] }")
    async with running_stack(time_env.client, tmp_path, policy) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        assert (await handle.result()).state == RunState.DENIED  # time skips past the approval timeout
        [waiting] = await notices(stack, handle.id, "waiting")
        assert "the policy's on_timeout applies (deny)" in waiting["text"]
        [timed_out] = await notices(stack, handle.id, "timed_out")
        assert "no decision in time" in timed_out["outcome"]

        stack.set_policy(make_policy(mode="logged"))
        automatic = await stack.start(EgressBlock.run, EgressBlockTrigger(ip="203.0.113.78", reason="r",
                                                                          requested_by="alice"))
        assert (await automatic.result()).state == RunState.COMPLETED
        assert (await stack.tools.lab_notifications(automatic.id))["notifications"] == []
        assert not [r for r in stack.ledger.audit_rows(automatic.id) if r["event"].startswith("notify.")]


class _Refusing(BaseHTTPRequestHandler):
    """A chat webhook that is down: every POST gets a 500."""

    hits = 0

    def do_POST(self):  # noqa: N802
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


async def test_a_failing_webhook_never_fails_the_run_nor_leaks_its_token(time_env, tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    token = "T0KEN-s3cr3t-in-the-url"
    monkeypatch.setenv("HANDRAIL_TEST_CHAT_URL", f"http://127.0.0.1:{server.server_port}/hooks/{token}")
    policy = make_policy() + """
[settings.notify]
attempts = 2
timeout = 2.0
channels = [
  { name = "lab", type = "lab" },
  { name = "soc-chat", type = "webhook", url_env = "HANDRAIL_TEST_CHAT_URL" },
]
"""
    try:
        async with running_stack(time_env.client, tmp_path, policy) as stack:
            handle = await stack.start(EgressBlock.run, trigger())
            await notices(stack, handle.id, "waiting")  # the lab channel still works
            status = await handle.query("status", result_type=RunStatus)
            await handle.signal(EgressBlock.decide, make_decision("bob", True, None, "", status))
            result = await handle.result()
            assert result.state == RunState.COMPLETED and IP in await stack.edl()
            rows = list(stack.ledger.audit_rows(handle.id))
            failed = [r["data"] for r in rows if r["event"] == "notify.failed"]
            assert {d["notice"] for d in failed} == {"waiting", "approved"}
            assert all(d["channel"] == "soc-chat" and "HTTP 500" in d["error"] and "2 attempt" in d["error"]
                       for d in failed)
            assert _Refusing.hits == 4  # bounded: two attempts per notice
            history = json.dumps([str(e) async for e in handle.fetch_history_events()])
            assert token not in json.dumps(rows, default=str) and token not in history
            assert "HANDRAIL_TEST_CHAT_URL" not in history  # the history names the notice, not the channel setup
    finally:
        server.shutdown()


@pytest.mark.unit
def test_the_exfiltration_questions_notice_names_the_verdict_its_timeout_gives_not_deny():
    # its on_timeout must stay deny (it closes the gate), but the alert's verdict at the deadline is
    # settings.exfiltration.on_unclassified_timeout: "deny" read as "inadvertent" to an approver
    from handrail.gate.models import Change, GatePolicy, Mode, StepRecord
    from workflows.notify import _at_timeout

    policy = GatePolicy(kind="firewall.egress_block", mode=Mode.APPROVE, on_timeout="deny")
    question = StepRecord(step_id="s01", change=Change(kind="exfiltration.classify_malicious", target="DLP-1"))
    block = StepRecord(step_id="s01", change=Change(kind="firewall.egress_block", target="203.0.113.9"))
    assert "on_unclassified_timeout" in _at_timeout(question, policy) and "deny" not in _at_timeout(question, policy)
    assert _at_timeout(block, policy) == "the policy's on_timeout applies (deny)"
