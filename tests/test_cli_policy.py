"""`handrail policy check`: the whole policy, runbook settings tables included, in one sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from starter.cli import app

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).resolve().parents[1] / "policy.toml"


def test_shipped_policy_checks_clean():
    result = CliRunner().invoke(app, ["policy", "check", str(SHIPPED), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["ok"] and "firewall.egress_block" in {a["kind"] for a in doc["actions"]}


@pytest.mark.parametrize(
    "old, new, words",
    [
        ("promote_after_days = 14", 'promote_after_days = "soon"', "settings.trust.promote_after_days"),
        ('[actions."edr.isolate"]\n', '[actions."edr.isolate"]\nbogus = 1\n', "bogus"),
    ],
)
def test_a_bad_section_is_one_sentence_and_exit_1(tmp_path, old, new, words):
    text = SHIPPED.read_text()
    assert old in text
    bad = tmp_path / "policy.toml"
    bad.write_text(text.replace(old, new, 1))
    result = CliRunner().invoke(app, ["policy", "check", str(bad), "--json"])
    assert result.exit_code == 1
    error = json.loads(result.output)["error"]
    assert words in error and "Traceback" not in result.output
