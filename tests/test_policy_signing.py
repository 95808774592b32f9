"""Policy under the same rule: an edit counts only when enough policy admins of the last signed policy signed it."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from handrail.gate import signatures
from handrail.gate.models import EgressBlockTrigger, RunState, StepState
from handrail.gate.policy import PolicyError
from handrail.gate.policy_signing import POLICY_NAMESPACE, PolicyKeeper, signature_path
from starter.cli import app
from tests.support import TEST_KEYS, key_file, make_policy, running_stack, send_decision, with_test_keys
from workflows.egress_block import EgressBlock

ADMINS = '\n[policy_admins]\nroles = ["soc-lead"]\nrequired = 1\n'
SIGNED = with_test_keys(make_policy(mode="approve")) + ADMINS
LOOSENED = SIGNED.replace('mode = "approve"', 'mode = "logged"', 1)


def block(ip: str) -> EgressBlockTrigger:
    return EgressBlockTrigger(ip=ip, reason=f"block {ip}", requested_by="alice")


def sign(path, *users: str) -> None:
    data = path.read_bytes()
    blocks = [signatures.sign(TEST_KEYS[u], data, POLICY_NAMESPACE).strip() for u in users]
    sig = signature_path(path)
    sig.write_text("\n".join(blocks) + "\n")
    stat = sig.stat()
    os.utime(sig, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.mark.unit
def test_the_keeper_runs_signed_edits_and_falls_back_on_unsigned_ones(tmp_path):
    path, keeper = tmp_path / "policy.toml", PolicyKeeper(tmp_path / "home")
    path.write_text(SIGNED)
    with pytest.raises(PolicyError, match="not signed by enough policy_admins .1 of role soc-lead needed"):
        keeper.load(path)  # nothing signed yet and nothing to fall back on
    sign(path, "carol")
    assert keeper.load(path).gate_policy("firewall.egress_block").mode.value == "approve"
    assert keeper.refused is None and (tmp_path / "home" / "policy.trusted.toml").read_text() == SIGNED

    path.write_text(LOOSENED)  # a hand edit: the old signature no longer covers it
    assert keeper.load(path).gate_policy("firewall.egress_block").mode.value == "approve"
    assert "not signed by enough policy_admins" in keeper.refused.why

    # someone makes themselves an admin in the edit and signs it: judged by the *last signed* policy
    promoted = LOOSENED.replace('bob = { roles = ["soc-analyst"]', 'bob = { roles = ["soc-analyst", "soc-lead"]')
    path.write_text(promoted)
    sign(path, "bob")
    assert keeper.load(path).gate_policy("firewall.egress_block").mode.value == "approve"
    assert "valid signatures: none" in keeper.refused.why

    path.write_text(LOOSENED)
    sign(path, "carol")
    assert keeper.load(path).gate_policy("firewall.egress_block").mode.value == "logged"
    assert keeper.refused is None


@pytest.mark.unit
def test_two_of_n_needs_two_distinct_admins(tmp_path):
    text = SIGNED.replace('roles = ["soc-lead"]\nrequired = 1', 'users = ["carol", "erin"]\nrequired = 2')
    path, keeper = tmp_path / "policy.toml", PolicyKeeper(tmp_path / "home")
    path.write_text(text)
    sign(path, "carol", "carol")
    with pytest.raises(PolicyError, match="2 of user carol, user erin needed; valid signatures: carol"):
        keeper.load(path)
    sign(path, "carol", "erin")
    assert keeper.load(path).policy_admins.required == 2


@pytest.mark.unit
def test_policy_admins_must_be_able_to_sign():
    from handrail.gate.policy import parse_policy

    with pytest.raises(PolicyError, match="only 1 admin"):
        parse_policy(SIGNED.replace("required = 1", "required = 2"))


@pytest.mark.unit
def test_cli_sign_check_and_diff(tmp_path):
    home, path = tmp_path / "home", tmp_path / "policy.toml"
    path.write_text(SIGNED)
    env = {"HANDRAIL_HOME": str(home), "HANDRAIL_POLICY": str(path), "HANDRAIL_SIGNING_KEY": ""}
    runner = CliRunner()
    unsigned = runner.invoke(app, ["policy", "check", "--json"], env=env)
    assert unsigned.exit_code == 1 and "not signed by enough policy_admins" in json.loads(unsigned.output)["error"]
    signed = runner.invoke(app, ["policy", "sign", "--key", str(key_file("carol", tmp_path)), "--json"], env=env)
    assert signed.exit_code == 0, signed.output
    doc = json.loads(signed.output)
    assert doc["signed_by"] == "carol" and doc["ok"] and doc["signers"] == ["carol"]
    assert runner.invoke(app, ["policy", "check", "--json"], env=env).exit_code == 0
    PolicyKeeper(home).load(path)  # what the worker does: keep it as the signed policy

    path.write_text(LOOSENED)
    shown = runner.invoke(app, ["policy", "diff", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    diff = json.loads(shown.output)
    assert diff["modes"] == {"firewall.egress_block": ["approve", "logged"]}
    assert diff["signing"]["ok"] is False and diff["changed"] and any(line.startswith("+") for line in diff["diff"])
    refused = runner.invoke(app, ["policy", "sign", "--key", str(key_file("bob", tmp_path)), "--json"], env=env)
    assert refused.exit_code == 0 and json.loads(refused.output)["ok"] is False  # bob signed, but is no admin


@pytest.mark.workflow
async def test_an_unsigned_policy_edit_is_refused_and_alerted(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, SIGNED) as stack:
        sign(stack.settings.policy_path, "carol")
        first = await stack.start(EgressBlock.run, block("203.0.113.7"))
        await stack.wait_for(first, lambda s: s.state == RunState.AWAITING_APPROVAL)
        await send_decision(first, "bob", approve=False, reason="not needed")
        await first.result()

        stack.set_policy(LOOSENED)  # a hand edit that would let blocks run without a human
        second = await stack.start(EgressBlock.run, block("203.0.113.8"))
        waiting = await stack.wait_for(second, lambda s: s.state == RunState.AWAITING_APPROVAL)
        assert waiting.pending_step().mode.value == "approve"  # the last signed policy still rules
        alerts = [a for a in await stack.tools.alerts.list_alerts() if a.title == "Unsigned policy edit refused"]
        assert len(alerts) == 1 and alerts[0].priority == "P1" and "policy_admins" in alerts[0].body
        assert [r["event"] for r in stack.ledger.audit_rows("handrail-policy")] == ["policy.refused"]
        await send_decision(second, "bob", approve=False, reason="not needed")
        await second.result()

        sign(stack.settings.policy_path, "carol")  # now a policy admin signs the edit
        third = await stack.start(EgressBlock.run, block("203.0.113.9"))
        result = await third.result()
        assert result.state == RunState.COMPLETED and result.steps[0].state == StepState.APPLIED
        assert result.steps[0].mode.value == "logged"


@pytest.mark.unit
def test_trust_set_under_policy_admins_says_the_edit_is_not_in_force_until_signed(tmp_path):
    """carol (a policy admin) moves a kind with `trust set`: the file changes and the act is
    audited, but the workers keep the last signed policy until enough admins sign the edit, so
    the command must not say the kind "is now" in that mode."""
    home, path = tmp_path / "home", tmp_path / "policy.toml"
    path.write_text(SIGNED)
    sign(path, "carol")
    PolicyKeeper(home).load(path)  # what the worker does: keep it as the signed policy
    env = {"HANDRAIL_HOME": str(home), "HANDRAIL_POLICY": str(path), "HANDRAIL_SIGNING_KEY": ""}
    runner = CliRunner()
    carol = ["--key", str(key_file("carol", tmp_path))]
    moved = runner.invoke(app, ["trust", "set", "firewall.egress_block", "logged", "--as", "carol", "--reason",
                                "30 clean days", *carol], env=env)
    assert moved.exit_code == 0, moved.output
    said = " ".join(moved.output.split())
    assert "is now" not in said and "not in force yet" in said and "handrail policy sign --as YOU" in said
    doc = json.loads(runner.invoke(app, ["trust", "set", "firewall.egress_block", "guarded", "--as", "carol",
                                         "--reason", "x", *carol, "--json"], env=env).output)
    assert doc["in_force"] is False and "not signed by enough policy_admins" in doc["why_not_in_force"]
    assert PolicyKeeper(home).load(path).gate_policy("firewall.egress_block").mode.value == "approve"
    runner.invoke(app, ["policy", "sign", *carol], env=env)
    doc = json.loads(runner.invoke(app, ["trust", "set", "firewall.egress_block", "guarded", "--as", "carol",
                                         "--reason", "x", *carol, "--json"], env=env).output)
    assert doc["in_force"] is True  # nothing changed, and what is there is signed
