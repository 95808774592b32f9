"""Help for people: every option described, flags without `<bool>`, usage errors JSON under --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from starter.cli import app

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]


def _commands(group, path=()):
    for name, cmd in getattr(group, "commands", {}).items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, path + (name,))
        else:
            yield path + (name,), cmd


def test_every_option_and_argument_is_described():
    missing = [f"handrail {' '.join(path)} {p.name}" for path, cmd in _commands(typer.main.get_command(app))
               for p in cmd.params if not (p.help or "").strip()]
    assert not missing, missing


def test_every_command_takes_json():
    without = [" ".join(path) for path, cmd in _commands(typer.main.get_command(app))
               if "--json" not in {o for p in cmd.params for o in p.opts}]
    assert not without, without


@pytest.mark.parametrize("args", [["approve"], ["run", "egress-block"], ["lab", "faults"], ["audit", "export"]])
def test_help_shows_no_bool_placeholder_at_80_columns(args):
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and "<bool>" not in result.output
    assert all(len(line) <= 80 for line in result.output.splitlines())


def test_usage_errors_are_json_under_json():
    exe = str(Path(sys.executable).parent / "handrail")
    proc = subprocess.run([exe, "approve", "--json"], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "HANDRAIL_HOME": "/nonexistent-handrail-home"})
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert "Missing argument" in doc["error"] and doc["usage"].startswith("Usage: handrail approve")
    proc = subprocess.run([exe, "show", "x", "--page", "zero", "--json"], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode == 2 and "--page" in json.loads(proc.stdout)["error"]
