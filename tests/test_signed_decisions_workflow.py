"""Signed decisions inside a real workflow (time-skipping server): every forgery is rejected
with a clear reason and audited, the run keeps waiting, and the ledger re-verifies later."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from handrail.gate.decision_audit import verify_decision_signatures
from handrail.gate.models import EgressBlockTrigger, RunState, RunStatus
from tests.support import TEST_KEYS, make_decision, make_policy, running_stack, send_decision
from workflows.egress_block import EgressBlock

pytestmark = pytest.mark.workflow


def awaiting(status: RunStatus) -> bool:
    return status.state == RunState.AWAITING_APPROVAL


async def test_forgeries_are_rejected_audited_and_change_nothing(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path) as stack:
        handle = await stack.start(EgressBlock.run, EgressBlockTrigger(ip="203.0.113.70", reason="r",
                                                                       requested_by="alice"))
        status = await stack.wait_for(handle, awaiting)
        step = status.pending_step()
        assert step.change_digest.startswith("sha256:")
        await send_decision(handle, "bob", key=TEST_KEYS["erin"])                        # forged name
        await send_decision(handle, "bob", key=ed25519.Ed25519PrivateKey.generate())     # wrong key
        await handle.signal("decide", make_decision("bob", True, "s01-dns.sinkhole", "", status))  # another step
        await send_decision(handle, "bob", digest="sha256:" + "ab" * 32)                  # another change
        await send_decision(handle, "bob", issued_at=step.started_at - timedelta(minutes=18),
                            valid_for=timedelta(minutes=15))                              # expired
        await handle.signal("decide", {"id": "raw", "approver": "bob", "approve": True})  # raw, unsigned
        await handle.signal("decide", "approve")                                          # not even a decision
        await send_decision(handle, "alice")                                              # the requester's own key
        status = await stack.wait_for(handle, lambda s: len(s.rejected_decisions) == 8)
        whys = [r.why for r in status.rejected_decisions]
        assert "belongs to erin, not bob" in whys[0]
        assert "is not bob's key in the policy" in whys[1]
        assert whys[2] == f"the signature is for step s01-dns.sinkhole, this run waits on {step.step_id}"
        assert whys[3].startswith("the signature approves change sha256:abab")
        assert whys[4] == "this decision expired 3 minutes ago"
        assert whys[5].startswith("this decision is not signed")
        assert whys[6].startswith("the decision signal is malformed")
        assert "alice requested this run" in whys[7]
        assert status.state == RunState.AWAITING_APPROVAL and "203.0.113.70" not in await stack.edl()

        approval = await send_decision(handle, "bob", reason="EDR confirms")
        result = await handle.result()
        assert result.state == RunState.COMPLETED and result.steps[0].decisions[0].decision.approver == "bob"
        rows = list(stack.ledger.audit_rows(handle.id))
        rejected = [r["data"]["why"] for r in rows if r["event"] == "decision.rejected"]
        assert rejected == whys
        [accepted] = [r["data"] for r in rows if r["event"] == "decision.accepted"]
        assert accepted["decision"]["signature"] == approval.signature
        assert accepted["signer_fingerprint"].startswith("SHA256:")
        assert stack.ledger.changes_for_run(handle.id)[0].approved_by == ["bob"]

        report = verify_decision_signatures(stack.ledger.audit_rows())
        assert report.ok and report.checked == 1
        forged_rows = list(stack.ledger.audit_rows(handle.id))
        for row in forged_rows:  # the policy in force lists erin's key for bob: the stored signature no longer fits
            if row["event"] == "approval.requested":
                row["data"]["keys"]["bob"] = row["data"]["keys"]["erin"]
        [failure] = verify_decision_signatures(forged_rows).failures
        assert "is not bob's key" in failure["why"]


async def test_a_replayed_decision_and_n_of_m_distinct_signers(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(required=2)) as stack:
        handle = await stack.start(EgressBlock.run, EgressBlockTrigger(ip="203.0.113.71", reason="r",
                                                                       requested_by="carol"))
        status = await stack.wait_for(handle, awaiting)
        first = make_decision("bob", True, None, "", status)
        await handle.signal("decide", first)
        await handle.signal("decide", first)  # the same signed decision again
        await send_decision(handle, "bob")  # a fresh signature by the same person
        status = await stack.wait_for(handle, lambda s: len(s.rejected_decisions) == 2)
        assert [r.why for r in status.rejected_decisions] == [
            "this signed decision was already used in this run (replay)",
            "bob already decided on step s01-firewall.egress_block"]
        assert status.state == RunState.AWAITING_APPROVAL
        await send_decision(handle, "erin")
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        assert stack.ledger.changes_for_run(handle.id)[0].approved_by == ["bob", "erin"]
        assert verify_decision_signatures(stack.ledger.audit_rows()).checked == 2


async def test_requester_must_be_the_signer_of_the_request(time_env, tmp_path):
    from handrail.gate.models import StepState
    from tests.support import signed_request_memo

    async with running_stack(time_env.client, tmp_path) as stack:
        unsigned = await stack.start(EgressBlock.run, EgressBlockTrigger(ip="203.0.113.72", reason="r",
                                                                         requested_by="bob"), signed=False)
        result = await unsigned.result()
        assert result.state == RunState.REJECTED
        assert "names bob as requester but carries no signature from bob" in result.error
        assert result.steps[0].state == StepState.DENIED and "203.0.113.72" not in await stack.edl()

        trigger = EgressBlockTrigger(ip="203.0.113.73", reason="r", requested_by="bob")
        now = await stack.server_now()
        forged = signed_request_memo(EgressBlock.run, "forged-run", trigger, "bob", key=TEST_KEYS["alice"], now=now)
        handle = await stack.start(EgressBlock.run, trigger, id="forged-run", memo=forged, signed=False)
        assert "signed with alice's key, not bob's" in (await handle.result()).error

        other = signed_request_memo(EgressBlock.run, "other-trigger", trigger.model_copy(update={"ip": "203.0.113.9"}),
                                    "bob", now=now)
        handle = await stack.start(EgressBlock.run, trigger, id="other-trigger", memo=other, signed=False)
        assert "for another trigger" in (await handle.result()).error
        refused = [r for r in stack.ledger.audit_rows() if r["event"] == "run.request_refused"]
        assert len(refused) == 3 and "203.0.113.73" not in await stack.edl()

        proven = await stack.start(EgressBlock.run, EgressBlockTrigger(ip="203.0.113.74", reason="r",
                                                                       requested_by="bob"))
        await stack.wait_for(proven, awaiting)
        [row] = [r for r in stack.ledger.audit_rows(proven.id) if r["event"] == "run.requester_proven"]
        assert row["data"]["how"] == "signed request" and row["data"]["signer_fingerprint"].startswith("SHA256:")
        await send_decision(proven, "bob")  # the proven requester cannot approve, whatever name is typed
        status = await stack.wait_for(proven, lambda s: s.rejected_decisions)
        assert "bob requested this run" in status.rejected_decisions[0].why
        await send_decision(proven, "erin")
        assert (await proven.result()).state == RunState.COMPLETED
