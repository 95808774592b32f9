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


def test_shipped_policy_never_applies_a_huge_intel_batch_without_a_human():
    """Every kind the intel sync blocks or unblocks with holds a batch far above an hourly sync's
    size in every automatic mode: the age-out of a feed that left the policy once unblocked
    396,746 EDL entries at once (firewall.egress_unblock had only a rate_limit, which counts
    one batch as one change)."""
    from handrail.gate.guardrails import evaluate
    from handrail.gate.models import Change, GuardrailContext
    from handrail.gate.policy import load_policy
    from handrail.intel.messages import ADD_ORDER, REMOVE_KIND

    policy = load_policy(SHIPPED)
    for kind in {*ADD_ORDER, *(REMOVE_KIND[k] for k in ADD_ORDER)}:
        change = Change(kind=kind, target="set:" + "ab" * 32, params={"count": 200_000})
        verdicts = evaluate(change, GuardrailContext(guardrails=policy.guardrails_for(kind)))
        held = policy.gate_policy(kind).mode.value == "approve" or any(
            v.guardrail == "max_batch" and v.outcome.value == "hold" for v in verdicts)
        assert held, kind
    doc = json.loads(CliRunner().invoke(app, ["policy", "check", str(SHIPPED), "--json"]).output)
    assert doc["warnings"] == []


def test_policy_check_warns_of_an_intel_kind_with_no_batch_bound(tmp_path):
    text = SHIPPED.read_text()
    old = '  { type = "max_batch", max = 50000, outcome = "hold" },\n]\n\n[actions."dns.sinkhole"]'
    assert old in text
    edited = tmp_path / "policy.toml"
    edited.write_text(text.replace(old, ']\n\n[actions."dns.sinkhole"]', 1))
    result = CliRunner().invoke(app, ["policy", "check", str(edited)])
    assert result.exit_code == 0, result.output
    assert "warning: firewall.egress_unblock (guarded) has no max_batch guardrail" in " ".join(result.output.split())


def test_policy_check_warns_when_the_sync_parts_can_never_reach_max_batch(tmp_path):
    text = SHIPPED.read_text()
    old = "change_max_members = 200000"
    assert old in text
    edited = tmp_path / "policy.toml"
    edited.write_text(text.replace(old, "change_max_members = 5000", 1))
    doc = json.loads(CliRunner().invoke(app, ["policy", "check", str(edited), "--json"]).output)
    said = {w.split(" ", 1)[0] for w in doc["warnings"]}
    # every automatic batch kind (firewall.egress_block is `approve`: a person sees every part)
    assert said == {"proxy.block", "ips.deploy_rule", "proxy.unblock", "ips.remove_rule", "firewall.egress_unblock"}
    assert any("settings.intel.change_max_members (5000) splits every update" in w for w in doc["warnings"])
