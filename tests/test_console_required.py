"""`--help` marks exactly the options a command needs (typer's own `*` and `[required]`)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from starter.cli import app

pytestmark = pytest.mark.unit


def _params(name: str) -> dict:
    return {p.name: p for p in typer.main.get_command(app).commands[name].params}


def test_deny_needs_a_reason_and_help_marks_it():
    assert _params("deny")["reason"].required
    result = CliRunner().invoke(app, ["deny", "--help"], env={"COLUMNS": "80"})
    line = next(line for line in result.output.splitlines() if "--reason" in line)
    assert line.lstrip("│ ").startswith("*") and "[required]" in result.output
    missing = CliRunner().invoke(app, ["deny", "some-run"])
    assert missing.exit_code == 2 and "--reason" in missing.output


def test_approve_and_deny_say_that_as_is_optional_because_the_key_decides():
    for command in ("approve", "deny"):
        assert not _params(command)["as_"].required  # `--key` alone identifies the approver
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "80"})
        as_line = next(line for line in result.output.splitlines() if "--as" in line)
        assert not as_line.lstrip("│ ").startswith("*") and "Optional" in as_line
