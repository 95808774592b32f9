"""Who may roll back: `[settings.rollback]`, checked by `handrail policy check` and by the rollback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handrail.gate.policy import parse_policy
from handrail.gate.rollback import RollbackPlan, allowed_for, parties_from_audit, refusal
from starter.cli import app

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).resolve().parents[1] / "policy.toml"
SECTION = 'allowed = { roles = ["soc-analyst", "soc-lead"] }'


@pytest.mark.parametrize("new, words", [
    ('allowed = { roles = ["nobody-has-it"] }', "settings.rollback.allowed names role 'nobody-has-it'"),
    ('allowed = { users = ["mallory"] }', "unknown user 'mallory'"),
    ('allowed = { roles = ["soc-lead"] }\nwho = 1', "settings.rollback.who"),
])
def test_a_bad_rollback_section_is_refused_by_policy_check(tmp_path, new, words):
    text = SHIPPED.read_text()
    assert SECTION in text
    bad = tmp_path / "policy.toml"
    bad.write_text(text.replace(SECTION, new, 1))
    result = CliRunner().invoke(app, ["policy", "check", str(bad), "--json"])
    assert result.exit_code == 1
    assert words in json.loads(result.output)["error"]


def test_per_runbook_rules_and_the_people_a_run_acted_against():
    policy = parse_policy(SHIPPED.read_text().replace(
        SECTION, SECTION + '\nrunbooks = { "privilege-guard" = { roles = ["soc-lead"] } }'))
    assert allowed_for(policy, "privilege-guard").roles == ["soc-lead"]
    assert allowed_for(policy, "egress-block").roles == ["soc-analyst", "soc-lead"]
    rows = [
        {"event": "run.started", "data": {"runbook": "privilege-guard", "requested_by": "handrail"}},
        {"event": "run.requester_set", "data": {"requested_by": "alice"}},
        {"event": "step.requested", "data": {"excluded_deciders": ["bob"]}},
    ]
    runbook, parties = parties_from_audit(rows)
    assert runbook == "privilege-guard" and parties == ["alice", "bob", "handrail"]
    plan = RollbackPlan(run_id="r", runbook=runbook, known=True, parties=parties,
                        allowed=allowed_for(policy, runbook),
                        user_roles={n: list(u.roles) for n, u in policy.users.items()})
    assert "is a party to run" in refusal("alice", plan) and "is a party to run" in refusal("bob", plan)
    assert "may not roll back privilege-guard runs (allowed: role soc-lead)" in refusal("dave", plan)
    assert refusal("carol", plan) is None
