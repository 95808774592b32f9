"""Fault injection: repeatable error rates, latency, fixed 4xx, typed client errors."""

from __future__ import annotations

import time

import pytest

from handrail.tools.errors import Conflict, ToolError, Unavailable
from lab.testing import in_process_lab

pytestmark = pytest.mark.unit


@pytest.fixture
async def lab(tmp_path):
    async with in_process_lab(tmp_path) as lab:
        yield lab


async def outcomes(lab, n: int = 30) -> list[int]:
    seen = []
    for _ in range(n):
        try:
            await lab.tools.firewall.egress_list()
            seen.append(200)
        except Unavailable as exc:
            assert exc.retryable
            seen.append(exc.status)
    return seen


async def test_seeded_error_rate_is_repeatable(lab):
    await lab.tools.lab_set_fault("/firewall/*", error_rate=0.5, error_status=503, seed=7)
    first = await outcomes(lab)
    assert 200 in first and 503 in first
    await lab.tools.lab_clear_faults()
    await lab.tools.lab_set_fault("/firewall/*", error_rate=0.5, error_status=503, seed=7)
    assert await outcomes(lab) == first
    await lab.tools.lab_clear_faults()
    assert set(await outcomes(lab, 5)) == {200}


async def test_latency(lab):
    await lab.tools.lab_set_fault("/dns/*", latency_ms=120)
    start = time.perf_counter()
    await lab.tools.dns.list_sinkholes()
    assert time.perf_counter() - start >= 0.11  # a lower bound: the delay was served
    await lab.tools.firewall.egress_list()
    # another route is not delayed: the fault matched the DNS call only (no upper time bound, which a
    # loaded machine would break)
    assert [f.hits for f in await lab.tools.lab_faults()] == [1]


async def test_fixed_4xx_and_500_map_to_typed_errors(lab):
    await lab.tools.lab_set_fault("/firewall/egress", method="POST", status=409)
    with pytest.raises(Conflict) as exc:
        await lab.tools.firewall.egress_add("203.0.113.9", "x")
    assert not exc.value.retryable and exc.value.code == "fault_injected"
    assert await lab.tools.firewall.egress_get("203.0.113.9") is None
    await lab.tools.firewall.egress_list()  # GET is not affected
    await lab.tools.lab_clear_faults()
    await lab.tools.lab_set_fault("^/edr/hosts/[^/]+/isolate$", error_rate=1.0, error_status=500)
    with pytest.raises(Unavailable) as exc:
        await lab.tools.edr.isolate("lt-alice")
    assert exc.value.status == 500 and exc.value.retryable
    assert not (await lab.tools.edr.get_host("lt-alice")).isolated
    await lab.tools.lab_set_fault("/proxy/*", status=429)
    with pytest.raises(ToolError) as exc:
        await lab.tools.proxy.get_indicator("x.example")
    assert exc.value.status == 429 and not exc.value.retryable


async def test_injected_5xx_is_not_stored_for_idempotency(lab):
    await lab.tools.lab_set_fault("/firewall/egress", method="POST", error_rate=1.0, count=1)
    with pytest.raises(Unavailable):
        await lab.tools.firewall.egress_add("203.0.113.9", "x", idempotency_key="retry-me")
    entry = await lab.tools.firewall.egress_add("203.0.113.9", "x", idempotency_key="retry-me")
    assert entry.value == "203.0.113.9"
    assert [f.hits for f in await lab.tools.lab_faults()] == [1]


async def test_faults_never_apply_to_lab_routes_and_validate(lab):
    await lab.tools.lab_set_fault("*", status=403)
    assert (await lab.tools.lab_state(counts_only=True)).hash
    assert await lab.tools.lab_calls() is not None
    assert len(await lab.tools.lab_faults()) == 1
    await lab.tools.lab_clear_faults()
    async with lab.client(lab.settings.lab_admin_token) as c:
        for bad in ({"route": "/x", "error_rate": 2}, {"route": "^(", "status": 418},
                    {"route": "/x", "status": 503}, {"error_rate": 0.1}):
            r = await c.post("/_lab/faults", json=bad)
            assert r.status_code == 422, bad
            assert set(r.json()) == {"error", "code"}
