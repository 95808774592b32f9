"""A revert (rollback, compensation, expiry, reconciler) heartbeats like an apply, and every
caller gives it a heartbeat timeout: a worker killed mid-revert is noticed in seconds, not
after the minute of its start-to-close timeout."""

from __future__ import annotations

import pytest
from temporalio.testing import ActivityEnvironment

from activities.context import WorkerContext
from activities.gate import GateActivities
from handrail.gate.ledger import Ledger
from handrail.gate.models import ApplyRequest, Change, Mode, RevertRequest
from lab.testing import in_process_lab
from tests.support import make_policy, with_test_keys
from workflows import expiry, gate, reconcile

pytestmark = pytest.mark.integration


def test_every_revert_caller_sets_a_heartbeat_timeout():
    for name, opts in (("gate.UNDO_OPTS", gate.UNDO_OPTS), ("gate.COMPENSATE_OPTS", gate.COMPENSATE_OPTS),
                       ("expiry.REVERT_OPTS", expiry.REVERT_OPTS), ("reconcile.REVERT_OPTS", reconcile.REVERT_OPTS)):
        assert opts.get("heartbeat_timeout") is not None, name
        assert opts["heartbeat_timeout"] < opts["start_to_close_timeout"], name


async def test_a_slow_revert_heartbeats(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(with_test_keys(make_policy(mode="logged")))
    async with in_process_lab(tmp_path / "home", HANDRAIL_POLICY=str(policy)) as lab:
        ledger = Ledger(lab.settings.ledger_path)
        gate_activities = GateActivities(WorkerContext.build(lab.settings, lab.tools, ledger))
        record = await ActivityEnvironment().run(gate_activities.apply_change, ApplyRequest(
            run_id="run-h", step_id="s01-firewall.egress_block",
            change=Change(kind="firewall.egress_block", target="203.0.113.62"),
            idempotency_key="run-h/s01-firewall.egress_block", mode=Mode.LOGGED, requested_by="alice"))
        await lab.tools.lab_set_fault("/firewall/egress/*", method="DELETE", latency_ms=2600, count=1)
        env, beats = ActivityEnvironment(), []
        env.on_heartbeat = lambda *details: beats.append(details)
        result = await env.run(gate_activities.revert_change, RevertRequest(
            change_id=record.change_id, reason="rollback", by="carol", run_id="run-h"))
        assert result.reverted and result.verified
        assert beats, "the revert sent no heartbeat while the firewall held its call"
        ledger.close()
