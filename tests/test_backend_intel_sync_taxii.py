"""The intel sync with a TAXII 2.1 collection (medallion) beside the lab's HTTP feeds: an
indicator only one HTTP feed names becomes a consensus block once the collection names it too."""

from __future__ import annotations

import pytest

from handrail.gate.models import RunState
from tests.backend_servers import medallion, write_tools_file
from tests.support import running_stack
from tests.test_backend_intel_taxii import indicator, post
from tests.test_intel_sync import intel_policy, proxy_blocked, sync

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
