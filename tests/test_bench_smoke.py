"""`handrail bench runbooks` works end to end (a tiny run; the numbers are not checked here)."""

from __future__ import annotations

import pytest

from starter.bench import bench_runbooks

pytestmark = pytest.mark.integration


async def test_bench_runbooks_smoke():
    result = await bench_runbooks(runs=2, rounds=1)
    assert result["gate_state_sample"] == "completed"
    assert result["handrail_runs_per_second"] > 0 and result["bare_runs_per_second"] > 0
    assert result["ratio_to_bare"] > 0
    for variant in ("handrail", "bare"):
        assert set(result["cpu_ms_per_run"][variant]) == {"worker", "server", "lab"}
        assert result["history"][variant]["events"] > 0
    # the yardstick is the minimal workflow: one activity, so a short history
    assert result["history"]["bare"]["events"] < result["history"]["handrail"]["events"]
