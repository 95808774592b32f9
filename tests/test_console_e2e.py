"""The analyst's console, end to end: what `handrail` tells a person, read at 80 columns.

One stack (`handrail up --detach`) for the module; each test drives the CLI the way an
analyst would and checks what it prints and how it exits.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.test_e2e_cli import REPO, _handrail_exe, cli, stack_env, wait_show  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


def text(env, *args: str) -> subprocess.CompletedProcess:
    """Run the CLI without --json, as a person reads it on an 80-column terminal."""
    return subprocess.run([_handrail_exe(), *args], env={**env, "COLUMNS": "80"}, capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def wait_pending(env, run_id: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:  # visibility is eventually consistent
        _, rows = cli(env, "pending")
        for row in rows:
            if row["run_id"] == run_id:
                return row
        assert time.monotonic() < deadline, f"{run_id} never showed up in `handrail pending`"
        time.sleep(0.3)


def test_approve_reports_the_state_that_resulted(stack_env):
    env = stack_env
    _, started = cli(env, "run", "egress-block", "--ip", "203.0.113.61", "--reason", "console", "--requested-by",
                     "alice")
    run_id = started["run_id"]
    wait_show(env, run_id, "awaiting_approval")
    _, result = cli(env, "approve", run_id, "--as", "bob")
    assert result["accepted"] is True
    assert result["state"] != "awaiting_approval", result
    assert result["step_state"] in ("applied", "unchanged") and result["approvals"] == "1/1"
