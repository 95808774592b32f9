"""Two reverts of one change at the same moment (an expiry and a manual rollback, two
rollbacks from two shells): the tool is undone once, the ledger keeps one revert, and only
the one whose revert the ledger kept says it reverted; the other says who did it."""

from __future__ import annotations

import pytest
from temporalio.testing import ActivityEnvironment

from activities.context import WorkerContext
from activities.gate import GateActivities
from handrail.gate.ledger import Ledger
from handrail.gate.models import ApplyRequest, Change, Mode, RevertRequest
from lab.testing import in_process_lab
from tests.support import make_policy, with_test_keys

pytestmark = pytest.mark.integration

IP = "203.0.113.61"


async def test_a_revert_that_loses_the_race_says_who_undid_the_change(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(with_test_keys(make_policy(mode="logged")))
    async with in_process_lab(tmp_path / "home", HANDRAIL_POLICY=str(policy)) as lab:
        ledger = Ledger(lab.settings.ledger_path)
        gate = GateActivities(WorkerContext.build(lab.settings, lab.tools, ledger))
        env = ActivityEnvironment()
        record = await env.run(gate.apply_change, ApplyRequest(
            run_id="run-r", step_id="s01-firewall.egress_block",
            change=Change(kind="firewall.egress_block", target=IP), idempotency_key="run-r/s01-firewall.egress_block",
            mode=Mode.LOGGED, requested_by="alice"))
        assert record.status == "applied"

        expiry = RevertRequest(change_id=record.change_id, reason="expiry", by="handrail", run_id="run-r")
        rollback = RevertRequest(change_id=record.change_id, reason="rollback", by="carol", run_id="run-r")
        firewall = lab.tools.firewall
        remove = firewall.egress_remove
        raced: list = []

        async def expiry_finishes_first(target, idempotency_key=None):
            """The rollback has read 'not reverted yet'; the expiry now undoes the change to the end."""
            if not raced:
                firewall.egress_remove = remove
                raced.append(await ActivityEnvironment().run(gate.revert_change, expiry))
            return await remove(target, idempotency_key=idempotency_key)

        firewall.egress_remove = expiry_finishes_first
        try:
            late = await env.run(gate.revert_change, rollback)
        finally:
            firewall.egress_remove = remove
        [first] = raced
        assert first.reverted and first.verified
        assert not late.reverted and late.already, late
        assert "expiry" in late.detail and "handrail" in late.detail
        revert = ledger.revert_of(record.change_id)
        assert (revert.reason, revert.by) == ("expiry", "handrail")
        reverted = [r for r in ledger.audit_rows("run-r") if r["event"] == "change.reverted"]
        assert [r["data"]["by"] for r in reverted] == ["handrail"]
        assert IP not in (await firewall.edl()).split()
        assert ledger.verify().ok
        ledger.close()
