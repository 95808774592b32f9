"""README, "First approval without the demo": every command it shows exists with the options it
uses, and the key steps do what it says (`keys init` says to replace an existing user's line; once
replaced, the policy is valid and the key signs as that user)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from starter.cli import app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _section_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("**First approval without the demo.**")
    block = re.search(r"```sh\n(.*?)```", readme[start:], re.S)
    assert block is not None and block.start() < 600, "the section opens with its commands"
    commands = [shlex.split(line.split("  #", 1)[0]) for line in block.group(1).splitlines()
                if line.startswith("handrail ")]
    prose = readme[start + block.end():start + block.end() + 800].split("\n\n", 1)[0]
    commands += [shlex.split(c) for c in re.findall(r"`(handrail [^`]+)`", prose)]
    return commands


def test_the_section_walks_from_keys_to_an_approval():
    names = [" ".join(c[1:3]) for c in _section_commands()]
    for step in ("up --detach", "keys init", "keys list", "policy check", "run egress-block", "pending",
                 "approve RUN"):
        assert any(n.startswith(step) for n in names), (step, names)


@pytest.mark.parametrize("words", _section_commands(), ids=lambda c: " ".join(c[1:4]))
def test_each_command_the_section_shows_exists_with_its_options(words):
    command = typer.main.get_command(app)  # typer's own click: a group is what has `commands`
    args = words[1:]
    while hasattr(command, "commands") and args and args[0] in command.commands:
        command, args = command.commands[args[0]], args[1:]
    assert not hasattr(command, "commands"), words
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    used = [a for a in args if a.startswith("--")]
    assert set(used) <= known, (words, set(used) - known)


def _home(tmp_path: Path, monkeypatch) -> Path:
    home, policy = tmp_path / "home", tmp_path / "policy.toml"
    home.mkdir()
    policy.write_text((ROOT / "policy.toml").read_text())
    monkeypatch.setenv("HANDRAIL_HOME", str(home))
    monkeypatch.setenv("HANDRAIL_POLICY", str(policy))
    return policy


def test_keys_init_says_to_replace_the_users_line_and_then_the_key_signs_as_them(tmp_path, monkeypatch):
    from handrail.gate.policy import load_policy
    from handrail.ops.config import load_settings
    from starter.signing import load_signer

    policy = _home(tmp_path, monkeypatch)
    out = CliRunner().invoke(app, ["keys", "init", "--user", "bob"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert f"Replace bob's line under [users] in {policy} with:" in text  # a second `bob = …` is a TOML error
    assert "Then sign decisions with: handrail approve RUN --as bob" in text
    line = json.loads(CliRunner().invoke(app, ["keys", "init", "--user", "bob", "--json"]).output)["policy_line"]
    policy.write_text(re.sub(r"(?m)^bob = \{.*\}$", lambda _: line, policy.read_text(), count=1))
    assert load_policy(policy).users["bob"].keys
    assert load_signer(load_settings(), None, "bob").user == "bob"
    listed = json.loads(CliRunner().invoke(app, ["keys", "list", "--json"]).output)["keys"]
    assert [r["local_key"] for r in listed if r["user"] == "bob"] == [str(tmp_path / "home" / "keys" / "bob_ed25519")]


def test_keys_init_for_a_new_user_says_add_and_that_a_role_is_needed(tmp_path, monkeypatch):
    _home(tmp_path, monkeypatch)
    out = CliRunner().invoke(app, ["keys", "init", "--user", "erin"])
    text = " ".join(out.output.split())
    assert out.exit_code == 0 and "Add this line under [users] in " in text and 'erin = { roles = [], keys' in text
    assert "give erin a role" in text
