"""`handrail pending`'s "until ..., then ..." says what the run will do at the deadline."""

from __future__ import annotations

from pathlib import Path

import pytest

from handrail.gate.policy import load_policy
from starter.console_views import deadline

pytestmark = pytest.mark.unit

POLICY = Path(__file__).resolve().parent.parent / "policy.toml"
SINCE = "2026-11-30T23:00:00+00:00"


def _row(action: str, escalated: bool) -> dict:
    return {"waiting_since": SINCE, "action": action, "escalated": escalated}


def test_a_step_that_escalates_first_says_so_not_deny():
    policy = load_policy(POLICY)  # firewall.egress_block: 4h, then role soc-lead for 4h, then deny
    assert deadline(_row("firewall.egress_block", False), policy) == (
        "2026-12-01 03:00Z, then it escalates to role soc-lead")
    assert deadline(_row("firewall.egress_block", True), policy) == "2026-12-01 07:00Z, then deny"


def test_the_exfiltration_question_names_on_unclassified_timeout_not_deny():
    policy = load_policy(POLICY)  # on_timeout "deny" is only the gate's; the runbook decides malicious
    assert deadline(_row("exfiltration.classify_malicious", True), policy) == (
        "2026-12-01 07:00Z, then malicious (settings.exfiltration.on_unclassified_timeout)")


def test_without_escalation_the_policy_on_timeout_is_shown(tmp_path):
    text = POLICY.read_text(encoding="utf-8")
    text = text.replace('[actions."firewall.egress_block"]\n',
                        '[actions."firewall.egress_block"]\nescalate_to = { roles = [] }\n', 1)
    rest = 'escalation_timeout = "4h"\non_timeout = "deny"\nalert_priority = "P1"'
    text = text.replace('escalate_to = { roles = ["soc-lead"] }\n' + rest, rest, 1)
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    policy = load_policy(path)
    assert not policy.gate_policy("firewall.egress_block").escalate_to.roles
    assert deadline(_row("firewall.egress_block", False), policy) == "2026-12-01 03:00Z, then deny"
