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


@pytest.mark.scaleout  # three worker processes and PostgreSQL: with the scale-out test, out of `make test`
@pytest.mark.postgres
async def test_bench_scale_out_smoke():
    """`bench runbooks --workers 2 --ledger embedded`: both configurations measured, and the two
    worker processes wrote one verified chain in the bench's own PostgreSQL."""
    from starter.bench_scale import bench_scale

    result = await bench_scale(runs=3, rounds=1, workers=2, ledger="embedded")
    assert set(result["configurations"]) == {"sqlite x1", "postgresql x2"}
    for config in result["configurations"].values():
        assert config["runs_per_second"] > 0 and config["ratio_to_bare"] > 0
        assert set(config["cpu_ms_per_run"]) == {"worker", "server", "lab", "postgres"}
    # the bench's own PostgreSQL is measured too (a number, not None: its processes were found)
    assert all(isinstance(c["cpu_ms_per_run"]["postgres"], float) for c in result["configurations"].values())
    chain = result["postgresql_chain"]
    assert chain["ok"], chain
    assert chain["changes"] == result["postgresql_changes_expected"]
