"""End to end: the `handrail` CLI against `handrail up --detach` (Temporal dev server, lab, worker)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from handrail.ops.ports import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]



def _handrail_exe() -> str:
    exe = shutil.which("handrail") or str(Path(sys.executable).parent / "handrail")
    assert Path(exe).exists(), "the handrail console script is not installed (pip install -e .)"
    return exe


def start_stack(tmp_path_factory):
    """`handrail up --detach` on a home of its own: yields the CLI's environment, then `handrail down`.
    Used once a session, by the `stack_env` fixture (conftest.py) of this module and test_console_e2e."""
    from tests.support import key_file, with_test_keys

    home = tmp_path_factory.mktemp("e2e-home")
    policy = home / "policy.toml"  # the shipped policy, with each test user's key (decisions are signed)
    policy.write_text(with_test_keys((REPO / "policy.toml").read_text()))
    (home / "keys").mkdir()
    for user in ("alice", "bob", "carol", "dave"):
        key_file(user, home / "keys")  # where `handrail keys init` puts a user's key
    temporal_port = free_port()
    env = {
        **os.environ,
        "HANDRAIL_HOME": str(home),
        "HANDRAIL_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "HANDRAIL_UI_PORT": str(free_port()),
        "HANDRAIL_LAB_URL": f"http://127.0.0.1:{free_port()}",
        "HANDRAIL_POLICY": str(policy),
        "HANDRAIL_TASK_QUEUE": "e2e",
        # the workers' tool token is a secret only `handrail up` passes to the lab and the worker:
        # every other CLI command below runs without it (tool credentials stay with the workers)
        "HANDRAIL_LAB_TOKEN": "e2e-tool-token-only-workers-hold",
        "HANDRAIL_LAB_ADMIN_TOKEN": "e2e-lab-admin-token",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    up = subprocess.run([_handrail_exe(), "up", "--detach", "--json"], env=env, capture_output=True, text=True,
                        timeout=180, cwd=REPO)
    assert up.returncode == 0, f"handrail up failed: {up.stdout}\n{up.stderr}"
    states = json.loads(up.stdout)["schedule_states"]  # read back from Temporal, not the flag `up` was given
    assert states["reconcile"] == "active" and states["mailbox"] == "paused", states
    try:
        yield env
    finally:
        subprocess.run([_handrail_exe(), "down"], env=env, capture_output=True, text=True, timeout=60, cwd=REPO)


def cli(env, *args: str, ok: bool = True):
    without_tool_token = {k: v for k, v in env.items() if k != "HANDRAIL_LAB_TOKEN"}
    proc = subprocess.run([_handrail_exe(), *args, "--json"], env=without_tool_token, capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    if ok:
        assert proc.returncode == 0, f"handrail {' '.join(args)} -> {proc.returncode}: {proc.stdout} {proc.stderr}"
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else None)


def wait_show(env, run_id: str, state: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        _, shown = cli(env, "show", run_id, ok=False)
        if shown and shown.get("state") == state:
            return shown
        assert time.monotonic() < deadline, f"run {run_id} never reached {state}: {shown}"
        time.sleep(0.3)


def edl(env) -> list[str]:
    response = httpx.get(env["HANDRAIL_LAB_URL"] + "/firewall/edl.txt",
                         headers={"Authorization": f"Bearer {env['HANDRAIL_LAB_TOKEN']}"}, timeout=10)
    response.raise_for_status()
    return response.text.split()


def test_block_approve_rollback(stack_env):
    env = stack_env
    _, started = cli(env, "run", "egress-block", "--ip", "203.0.113.99", "--reason", "e2e", "--requested-by", "alice")
    run_id = started["run_id"]
    wait_show(env, run_id, "awaiting_approval")

    deadline = time.monotonic() + 20
    while True:  # visibility is eventually consistent
        _, rows = cli(env, "pending")
        if any(r["run_id"] == run_id for r in rows):
            break
        assert time.monotonic() < deadline, "the waiting run never showed up in `handrail pending`"
        time.sleep(0.3)
    row = next(r for r in rows if r["run_id"] == run_id)
    assert row["action"] == "firewall.egress_block" and row["requested_by"] == "alice" and row["step"]

    code, refused = cli(env, "approve", run_id, "--as", "alice", ok=False)
    assert code == 1 and refused["accepted"] is False and "separation of duties" in refused["why"]
    _, accepted = cli(env, "approve", run_id, "--as", "bob")
    assert accepted["accepted"] is True

    shown = wait_show(env, run_id, "completed")
    assert shown["steps"][0]["state"] == "applied"
    assert "203.0.113.99" in edl(env)

    _, plan = cli(env, "rollback", run_id, "--dry-run")
    assert plan["plan"][0]["will_run"] and "firewall.egress_unblock" in plan["plan"][0]["undo"]
    assert "203.0.113.99" in edl(env)  # a dry run changes nothing

    _, report = cli(env, "rollback", run_id, "--as", "carol")
    assert report["state"] == "rolled_back"
    assert "203.0.113.99" not in edl(env)
    assert wait_show(env, run_id, "rolled_back")["state"] == "rolled_back"

    code, again = cli(env, "rollback", run_id, "--as", "carol", ok=False)
    assert code == 1 and "already been rolled back" in again["error"]

    _, verified = cli(env, "audit", "verify")
    assert verified["ok"] and verified["rows"] > 5
    exported = subprocess.run([_handrail_exe(), "audit", "export", "--run", run_id], env=env, capture_output=True,
                              text=True, timeout=60, cwd=REPO)
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    assert events[0]["event"] == "run.started" and events[-1]["event"] == "run.rolled_back"
    assert all(e["run_id"] == run_id and len(e["hash"]) == 64 for e in events)


def test_guardrail_denial_alerts_and_bad_input(stack_env):
    env = stack_env
    # a guardrail that needs no live state refuses before anything starts (issue 18, item 4)
    code, refused = cli(env, "run", "egress-block", "--ip", "146.75.1.1", "--reason", "feed", "--requested-by",
                        "alice", ok=False)
    assert code == 1 and "Largest customer" in refused["error"] and "Nothing was started" in refused["error"]
    code, _ = cli(env, "show", "egress-block-146.75.1.1", ok=False)
    assert code == 1

    code, error = cli(env, "run", "egress-block", "--ip", "999.1.1.1", "--reason", "x", ok=False)
    assert code == 2 and "not a valid IP" in error["error"]
    code, error = cli(env, "show", "no-such-run", ok=False)
    assert code == 1 and "No run no-such-run" in error["error"]
    code, error = cli(env, "approve", "no-such-run", "--as", "bob", ok=False)
    assert code == 1 and "No run no-such-run" in error["error"]


def test_signed_decisions_through_the_cli(stack_env):
    """Identity comes from the key; forged, raw and self decisions are rejected with their reason."""
    import asyncio

    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    env = stack_env
    keys = Path(env["HANDRAIL_HOME"]) / "keys"
    _, started = cli(env, "run", "egress-block", "--ip", "203.0.113.98", "--reason", "e2e signed", "--requested-by",
                     "alice")
    run_id = started["run_id"]
    shown = wait_show(env, run_id, "awaiting_approval")
    digest = shown["steps"][0]["change_digest"]
    assert digest.startswith("sha256:")
    text = subprocess.run([_handrail_exe(), "show", run_id], env=env, capture_output=True, text=True, cwd=REPO)
    assert digest in text.stdout and "covers" in text.stdout

    code, error = cli(env, "approve", run_id, "--as", "carol", "--key", str(keys / "bob_ed25519"), ok=False)
    assert code == 1 and error["error"] == "Your key belongs to bob, not carol."
    code, own = cli(env, "approve", run_id, "--key", str(keys / "alice_ed25519"), ok=False)
    assert code == 1 and own["signer"] == "alice" and "alice requested this run" in own["why"]

    async def raw_signal():
        client = await Client.connect(env["HANDRAIL_TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter)
        await client.get_workflow_handle(run_id).signal("decide", {"id": "raw", "approver": "bob", "approve": True})

    asyncio.run(raw_signal())
    deadline = time.monotonic() + 20
    while True:
        _, shown = cli(env, "show", run_id)
        whys = [r["why"] for r in shown["rejected_decisions"]]
        if len(whys) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert any(w.startswith("this decision is not signed") for w in whys), whys

    code, accepted = cli(env, "approve", run_id, "--as", "bob", "--reason", "EDR confirms")
    assert accepted["accepted"] is True and accepted["signer"] == "bob" and accepted["key"].startswith("SHA256:")
    wait_show(env, run_id, "completed")
    _, verified = cli(env, "audit", "verify", "--signatures")
    assert verified["ok"] and verified["signatures"]["ok"] and verified["signatures"]["decisions"] >= 1
    _, listed = cli(env, "keys", "list")
    assert {row["user"] for row in listed["keys"] if row["local_key"]} >= {"alice", "bob"}
