"""`handrail show` while Temporal is down: the ledger still answers, and says it is the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handrail.gate.ledger import Ledger
from handrail.ops.ports import free_port
from handrail.trust.synth import SyntheticLedger

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    ledger = Ledger(home / "ledger.db")
    at = datetime.now(UTC) - timedelta(hours=1)
    with SyntheticLedger(ledger) as syn:
        syn.event("r1", None, "run.started", at, runbook="egress-block", requested_by="alice", subject="203.0.113.7")
        syn.change("firewall.egress_block", at, run_id="r1", step_id="s01", target="203.0.113.7")
    ledger.close()
    (tmp_path / "policy.toml").write_text((ROOT / "policy.toml").read_text())
    return {"HANDRAIL_POLICY": str(tmp_path / "policy.toml"), "HANDRAIL_HOME": str(home),
            "HANDRAIL_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}", "COLUMNS": "200"}  # nothing listens there


def test_show_answers_from_the_ledger_when_temporal_is_down(tmp_path):
    from starter.cli import app

    env = _env(tmp_path)
    result = CliRunner().invoke(app, ["show", "r1"], env=env)
    assert result.exit_code == 0, result.output
    assert "firewall.egress_block 203.0.113.7" in result.output
    assert "Temporal is not answering" in result.output and "rebuilt from the ledger" in result.output
    unknown = CliRunner().invoke(app, ["show", "r2"], env=env)
    assert unknown.exit_code == 1 and "The ledger has no run r2, and Temporal is not answering" in unknown.output
