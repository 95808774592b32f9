"""The intel sync on real backends: a TAXII 2.1 collection (medallion) voting beside the lab's
HTTP feeds, and the EDL batch landing in nftables sets (in a network namespace) and rolled back."""

from __future__ import annotations

import pytest

from handrail.gate.models import RollbackTrigger, RunState
from tests.backend_servers import medallion, netns, write_tools_file
from tests.support import running_stack
from tests.test_backend_intel_taxii import indicator, post
from tests.test_intel_sync import intel_policy, proxy_blocked, sync
from workflows.rollback import RollbackRun, rollback_id

pytestmark = [pytest.mark.backends, pytest.mark.workflow]

SUSPECT = "62.204.41.88"  # named by one lab feed only: tightened, not blocked, without TAXII


async def test_a_taxii_collection_votes_in_the_consensus(time_env, tmp_path, monkeypatch):
    with medallion(tmp_path / "taxii", page_size=2) as taxii:
        post(taxii, "phish-indicators", [indicator(f"[ipv4-addr:value = '{SUSPECT}']", 1),
                                         indicator("[ipv4-addr:value = '198.51.100.77']", 2),
                                         indicator("[ipv4-addr:value = '198.51.100.78']", 3)])
        monkeypatch.setenv("HANDRAIL_E2E_TAXII_PW", taxii["password"])
        tools = write_tools_file(tmp_path / "tools.toml", {"intel": {
            "backend": "taxii", "api_root": taxii["api_root"], "username": taxii["user"],
            "password_env": "HANDRAIL_E2E_TAXII_PW", "page_size": 1}})
        policy = intel_policy(extra_feeds='  { name = "taxii:phish-indicators", format = "stix", weight = 1.0 },\n')
        async with running_stack(time_env.client, tmp_path, policy, tools=tools) as stack:
            result = await sync(stack)
            assert result.state == RunState.COMPLETED, result.error
            feeds = result.summary["feeds"]
            assert feeds["taxii:phish-indicators"]["source"] == "fetched"
            assert feeds["taxii:phish-indicators"]["accepted"] == 3
            assert {"lab-c2", "lab-stix"} <= set(feeds)  # the HTTP lists are still read
            assert await proxy_blocked(stack, [SUSPECT]) == {SUSPECT}
            assert not await proxy_blocked(stack, ["198.51.100.77"])  # one feed only: a suspect


async def test_the_edl_batch_lands_in_nftables_and_rolls_back(time_env, tmp_path):
    validated = ["45.142.212.61", "193.42.33.14", "91.92.241.17", "185.243.115.84"]
    with netns() as ns:
        tools = write_tools_file(tmp_path / "tools.toml", {"firewall": {
            "backend": "nftables", "nft_command": ["ip", "netns", "exec", ns, "nft"]}})
        async with running_stack(time_env.client, tmp_path, intel_policy(), tools=tools) as stack:
            fw = stack.tools.firewall
            await fw.egress_add("45.142.212.61", "blocked before the sync")
            result = await sync(stack)
            assert result.state == RunState.COMPLETED, result.error
            present = await fw.egress_lookup_many(validated)
            assert set(present) >= {"45.142.212.61", "193.42.33.14", "91.92.241.17"}
            [edl] = [r for r in stack.ledger.changes_for_run(result.run_id) if r.change.kind == "firewall.egress_block"]
            assert edl.status == "applied" and edl.before["present"] >= 1
            assert edl.after["present"] > edl.before["present"]

            rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=result.run_id, requested_by="carol"),
                                   id=rollback_id(result.run_id))
            report = await rb.result()
            assert report.state == "rolled_back" and all(r.verified for r in report.results), report
            assert [e.value for e in await fw.egress_list()] == ["45.142.212.61"]  # what was there before stays
