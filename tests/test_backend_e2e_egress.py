"""End to end on nftables: the gated egress block in a network namespace drops packets to the
address, its ledger record holds the set's before/after state, and the rollback restores it."""

from __future__ import annotations

import subprocess

import pytest

from handrail.gate.models import EgressBlockTrigger, RollbackTrigger, RunState
from tests.backend_servers import netns, tcp_verdict, write_tools_file
from tests.support import make_policy, running_stack
from workflows.egress_block import EgressBlock
from workflows.rollback import RollbackRun, rollback_id

pytestmark = [pytest.mark.backends, pytest.mark.workflow]

TARGET = "10.99.0.7"  # an address inside the test's namespace, so the guardrail for reserved space is off
POLICY = make_policy(mode="guarded", guardrails='{ type = "never_block" }')


async def test_gated_block_drops_and_rollback_restores(time_env, tmp_path):
    with netns() as ns:
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{TARGET}/32", "dev", "lo"], check=True)
        tools = write_tools_file(tmp_path / "tools.toml", {"firewall": {
            "backend": "nftables", "nft_command": ["ip", "netns", "exec", ns, "nft"]}})
        async with running_stack(time_env.client, tmp_path, POLICY, tools=tools) as stack:
            assert type(stack.tools.firewall).__name__ == "NftFirewall"
            assert tcp_verdict(ns, TARGET) == "refused"
            handle = await stack.start(EgressBlock.run, EgressBlockTrigger(ip=TARGET, reason="C2 beacon",
                                                                           requested_by="alice"))
            result = await handle.result()
            assert result.state == RunState.COMPLETED, result.error
            assert tcp_verdict(ns, TARGET) == "dropped"
            [record] = stack.ledger.changes_for_run(handle.id)
            assert record.status == "applied" and record.before == {"blocked": False, "comment": None}
            assert record.after["blocked"] is True

            undo = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="carol"),
                                     id=rollback_id(handle.id))
            report = await undo.result()
            assert report.state == "rolled_back" and not report.failed, report
            assert tcp_verdict(ns, TARGET) == "refused"
            assert await stack.tools.firewall.egress_get(TARGET) is None
