"""The bypasses, tried through the real gate: a run asks to block each form of the CRM and
the customer network, a multi-line target, a batch whose members include them — each is
denied on the record and the lab's blocklist does not change."""

from __future__ import annotations

import pytest

from handrail.gate.models import RunState
from handrail.intel.normalize import parse_feed
from handrail.intel.store import IntelStore
from tests.runbooks_for_tests import BlockMany, BlockManyRunbook
from tests.support import make_policy, running_stack

pytestmark = pytest.mark.workflow

BYPASSES = [
    "::ffff:161.71.5.5",        # IPv4-mapped CRM address
    "64:ff9b::a147:0/112",      # the CRM through NAT64
    "64:ff9b::/96",             # all of IPv4 through NAT64
    "::ffff:0:0/96",            # all of IPv4, mapped
    "2002:924b::/32",           # the customer network through 6to4
    "203.0.113.7\n161.71.0.0/16",  # two targets in one
]


async def test_every_embedded_or_multi_line_form_is_denied_at_the_gate(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded"), [BlockManyRunbook]) as stack:
        before = await stack.edl()
        for target in BYPASSES:
            result = await (await stack.start(BlockManyRunbook.run, BlockMany(targets=[target]))).result()
            assert result.state == RunState.DENIED, target
            assert result.steps[0].verdicts[0].outcome.value == "deny", target
        assert await stack.edl() == before


async def test_a_batch_is_checked_member_by_member_at_the_gate(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded"), [BlockManyRunbook]) as stack:
        store = IntelStore(stack.settings.store_dir)
        bad = store.put_set(parse_feed(b"198.51.100.7\n::ffff:161.71.5.5\n", feed="t", format="ipset").indicators)
        result = await (await stack.start(BlockManyRunbook.run, BlockMany(targets=[f"set:{bad}"]))).result()
        assert result.state == RunState.DENIED
        assert "members of the batch are refused" in result.error and "161.71" in result.error
        missing = "e" * 64  # a set nobody stored: refused, not waved through
        result = await (await stack.start(BlockManyRunbook.run, BlockMany(targets=[f"set:{missing}"]))).result()
        assert result.state == RunState.DENIED and "cannot be cleared" in result.error


async def test_a_proxy_batch_naming_an_allowlisted_domain_is_denied_at_the_gate(time_env, tmp_path):
    from tests.test_intel_sync import intel_policy, proxy_blocked

    async with running_stack(time_env.client, tmp_path, intel_policy(), [BlockManyRunbook]) as stack:
        store = IntelStore(stack.settings.store_dir)
        names = b"indicator\nevil-login.example.org\nlogin.salesforce.com\n"
        bad = store.put_set(parse_feed(names, feed="t", format="csv", columns={"indicator": "indicator"}).indicators)
        result = await (await stack.start(BlockManyRunbook.run,
                                          BlockMany(targets=[f"set:{bad}"], kind="proxy.block"))).result()
        assert result.state == RunState.DENIED
        assert "login.salesforce.com: on the allowlist (salesforce.com)" in result.error
        assert not await proxy_blocked(stack, ["evil-login.example.org", "login.salesforce.com"])


async def test_the_intel_sync_drops_embedded_forms_and_blocks_the_rest(time_env, tmp_path):
    from tests.test_intel_sync import intel_policy, sync

    async with running_stack(time_env.client, tmp_path, intel_policy()) as stack:
        body = (await stack.tools.intel.fetch_feed("lab-drop")).decode()
        forms = ["::ffff:161.71.5.5", "64:ff9b::a147:0/112", "2002:924b::/32", "64:ff9b::/96",
                 "2001:0:4136:e378:8000:63bf:5eb8:fafa"]  # mapped, NAT64, 6to4, all of IPv4, Teredo
        await stack.tools.intel.publish_feed("lab-drop", body + "\n".join(forms) + "\n")
        result = await sync(stack)
        assert result.state == RunState.COMPLETED, result.error
        assert result.summary["faulty_feeds"] == ["lab-drop"]
        assert result.summary["feeds"]["lab-drop"]["dropped"] == len(forms)
        edl = await stack.edl()
        assert not any(form.split("/")[0] in edl or "161.71" in edl for form in forms)
        assert "91.92.241.17" in edl  # the rest of the update went through


async def test_a_public_suffix_is_denied_at_the_gate_as_no_one_site(time_env, tmp_path):
    from tests.test_intel_sync import intel_policy, proxy_blocked

    async with running_stack(time_env.client, tmp_path, intel_policy(), [BlockManyRunbook]) as stack:
        for suffix, owners in [("co.uk", "a registry's public suffix"), ("github.io", "a platform's public suffix")]:
            result = await (await stack.start(BlockManyRunbook.run,
                                              BlockMany(targets=[suffix], kind="proxy.block"))).result()
            assert result.state == RunState.DENIED, suffix
            [verdict] = [v for v in result.steps[0].verdicts if v.guardrail == "canonical_target"]
            assert verdict.reason.startswith(f"{suffix} is {owners}"), verdict.reason
        assert not await proxy_blocked(stack, ["co.uk", "github.io"])
