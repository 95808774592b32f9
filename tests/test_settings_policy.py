"""Which policy a command uses: the one named, else the one the running stack enforces."""

from __future__ import annotations

import json

import pytest

from handrail.ops.config import load_settings

pytestmark = pytest.mark.unit


def test_a_command_uses_the_policy_the_running_stack_enforces(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home, demo = tmp_path / "home", tmp_path / "home" / "demo-policy.toml"
    home.mkdir()
    (tmp_path / "policy.toml").write_text("# the local policy\n")
    assert load_settings({"HANDRAIL_HOME": str(home)}).policy_path == tmp_path / "policy.toml"

    demo.write_text("# the demo's policy, with the demo keys\n")  # `handrail demo` started the stack on it
    (home / "stack.json").write_text(json.dumps({"policy": str(demo), "components": {}}))
    assert load_settings({"HANDRAIL_HOME": str(home)}).policy_path == demo
    named = tmp_path / "other.toml"
    assert load_settings({"HANDRAIL_HOME": str(home), "HANDRAIL_POLICY": str(named)}).policy_path == named

    demo.unlink()  # a record naming a policy that is gone, or no record at all: the local one
    assert load_settings({"HANDRAIL_HOME": str(home)}).policy_path == tmp_path / "policy.toml"
    (home / "stack.json").write_text("{not json")
    assert load_settings({"HANDRAIL_HOME": str(home)}).policy_path == tmp_path / "policy.toml"
