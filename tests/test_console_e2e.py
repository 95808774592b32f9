"""The analyst's console, end to end: what `handrail` tells a person, read at 80 columns.

One stack (`handrail up --detach`), shared with test_e2e_cli (`stack_env`, conftest.py); each
test drives the CLI the way an analyst would and checks what it prints and how it exits.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.test_e2e_cli import REPO, _handrail_exe, cli, wait_show

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
    # never "now running" for a run that completes a moment later: the state it came to, or how to follow it
    assert result["state"] == "completed" or result["follow"] == f"handrail show {run_id}", result


def _lines_fit(out: str, width: int = 80) -> list[str]:
    """Lines wider than the terminal, except commands and URLs printed whole on purpose."""
    return [line for line in out.splitlines()
            if len(line) > width
            and not line.lstrip().startswith(("approve:", "approve it:", "deny:", "http", "next:"))]


def wait_runs(env, run_id: str, state: str, *filters: str, timeout: float = 20.0) -> list[dict]:
    """`handrail runs --json` once it lists the run in that state (visibility is eventually consistent)."""
    deadline = time.monotonic() + timeout
    while True:
        _, rows = cli(env, "runs", *filters)
        if any(row["run_id"] == run_id and row["state"] == state for row in rows):
            return rows
        assert time.monotonic() < deadline, f"{run_id} never listed as {state} by `handrail runs`: {rows}"
        time.sleep(0.3)


def test_pending_runs_and_show_read_at_80_columns_with_the_id_whole(stack_env):
    env = stack_env
    _, started = cli(env, "run", "egress-block", "--ip", "203.0.113.62", "--reason", "console width",
                     "--requested-by", "alice")
    run_id = started["run_id"]
    wait_pending(env, run_id)
    out = text(env, "pending").stdout
    assert run_id in out.splitlines(), out
    assert f"handrail approve {run_id} --as YOU" in out
    assert "comment=console width" in out and "then it escalates to role soc-lead" in out
    assert not _lines_fit(out), out
    shown = text(env, "show", run_id).stdout
    assert f"{run_id}  egress-block  awaiting_approval" in shown
    assert any(line.endswith(f"/workflows/{run_id}") and line.startswith("http") for line in shown.splitlines())
    assert not _lines_fit(shown), shown
    waiting = wait_runs(env, run_id, "awaiting_approval", "--state", "awaiting_approval")
    assert {row["state"] for row in waiting} == {"awaiting_approval"}
    assert [r["started_at"] for r in waiting] == sorted((r["started_at"] for r in waiting), reverse=True)
    row = next(row for row in waiting if row["run_id"] == run_id)
    assert (row["runbook"], row["requested_by"], row["subject"]) == ("egress-block", "alice", "203.0.113.62")
    listed = text(env, "runs").stdout
    assert run_id in listed.splitlines() and "awaiting_approval" in listed, listed
    assert not _lines_fit(listed), listed
    cli(env, "deny", run_id, "--as", "bob", "--reason", "test over")


def test_a_batch_shows_its_members_not_a_hash(stack_env):
    env = stack_env
    _, started = cli(env, "run", "intel-sync", "--requested-by", "alice")
    run_id = started["run_id"]
    row = wait_pending(env, run_id, timeout=60)
    assert row["target"].startswith("set:")
    out = text(env, "pending").stdout
    assert "members to block; first:" in out and f"handrail show {run_id} --members" in out
    _, shown = cli(env, "show", run_id)
    batch = next(s["batch"] for s in shown["steps"] if s["step_id"] == row["step"])
    assert batch["count"] >= 1 and batch["first"] and "new" in batch
    _, page = cli(env, "show", run_id, "--members", "--per-page", "2")
    step = next(s for s in page["steps"] if s["step"] == row["step"])
    assert step["count"] == batch["count"] and step["members"] == batch["first"][:2]
    _, rest = cli(env, "show", run_id, "--members", "--per-page", "1000")
    assert set(batch["first"]) <= set(next(s for s in rest["steps"] if s["step"] == row["step"])["members"])
    cli(env, "deny", run_id, "--as", "bob", "--reason", "test over")


@pytest.mark.parametrize("args, reason", [
    (["egress-block", "--ip", "10.0.0.1", "--reason", "x"], "private address space"),
    (["egress-block", "--ip", "0.0.0.0/0", "--reason", "x"], "protected network"),
    (["exfiltration", "--alert-id", "DLP-9999"], "no DLP alert DLP-9999"),
    (["privilege-guard", "--event-id", "IAM-EVT-9999"], "no event IAM-EVT-9999"),
    (["rogue-device", "--mac", "aa:bb:cc:dd:ee:99"], "never seen a device"),
])
def test_run_refuses_early_and_starts_nothing(stack_env, args, reason):
    env = stack_env
    code, refused = cli(env, "run", *args, ok=False)
    assert code == 1 and reason in refused["error"] and "Nothing was started" in refused["error"]
    if args[0] == "exfiltration":  # the id was not taken: the same alert id stays free
        code, _ = cli(env, "show", "exfiltration-DLP-9999", ok=False)
        assert code == 1


def test_a_file_that_is_no_mail_never_reaches_the_mailbox(stack_env, tmp_path):
    env = stack_env
    _, before = cli(env, "lab", "state")
    code, refused = cli(env, "run", "phishing", "--eml", "/etc/passwd", ok=False)
    assert code == 1 and "nothing was posted to the mailbox" in refused["error"]
    _, after = cli(env, "lab", "state")
    assert after["tools"]["mailbox"] == before["tools"]["mailbox"]


def test_status_and_up_tell_the_truth(stack_env, tmp_path):
    env = stack_env
    code, info = cli(env, "status")
    assert code == 0 and info["healthy"] is True
    proc = text(env, "up", "--detach")
    assert proc.returncode == 0 and "already up" in proc.stdout
    assert any(line.startswith("http") and line.endswith("/workflows") for line in proc.stdout.splitlines())
    dead = {**env, "HANDRAIL_HOME": str(tmp_path), "HANDRAIL_TEMPORAL_ADDRESS": "127.0.0.1:9",
            "HANDRAIL_LAB_URL": "http://127.0.0.1:9"}
    code, info = cli(dead, "status", ok=False)
    assert code == 1 and info["healthy"] is False
    assert "Down: temporal, lab, worker" in text(dead, "status").stdout


def test_a_paused_schedule_shows_no_next_run(stack_env):
    env = stack_env
    _, shown = cli(env, "schedule", "mailbox", "--pause")
    assert shown["paused"] is True and shown["next_runs"] == []
    assert "No next run while paused" in text(env, "schedule", "mailbox").stdout


def test_trust_tables_read_at_80_columns(stack_env):
    for args in (["trust", "advise"], ["baseline"]):
        out = text(stack_env, *args).stdout
        assert "…" not in out and all(len(line) <= 80 for line in out.splitlines()), out


def test_lab_list_shows_the_inputs_and_how_to_start_a_run(stack_env):
    env = stack_env
    _, dlp = cli(env, "lab", "list", "dlp")
    assert dlp["count"] == len(dlp["items"]) > 0 and dlp["items"][0]["id"].startswith("DLP-")
    _, iam = cli(env, "lab", "list", "iam")
    assert all(item["id"].startswith("IAM-EVT-") for item in iam["items"])
    _, nac = cli(env, "lab", "list", "nac")
    assert nac["items"] and not any(item["in_cmdb"] for item in nac["items"])
    _, mailbox = cli(env, "lab", "list", "mailbox")
    assert mailbox["start_with"].startswith("handrail run phishing")
    out = text(env, "lab", "list", "dlp").stdout
    assert "Start a run: handrail run exfiltration --alert-id DLP-" in out
    code, error = cli(env, "lab", "list", "printers", ok=False)
    assert code == 2 and "mailbox, dlp, iam, nac" in error["error"]
    code, error = cli(env, "run", "exfiltration", "--alert-id", "DLP-9998", ok=False)
    assert "handrail lab list dlp" in error["error"]


def test_wait_prints_the_id_at_once_then_each_step_and_ctrl_c_leaves_the_run(stack_env):
    import signal

    env = {**stack_env, "COLUMNS": "80"}
    # Ctrl-C at a terminal: SIGINT as a shell gives a foreground command, even when this suite was
    # itself started in the background (`make test &` ignores SIGINT, and children inherit that)
    proc = subprocess.Popen([_handrail_exe(), "run", "egress-block", "--ip", "203.0.113.63", "--reason", "follow me",
                             "--requested-by", "alice", "--wait"], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = [proc.stdout.readline()]
    assert lines[0].startswith("Started run egress-block-203.0.113.63-"), lines
    run_id = lines[0].split()[-1]
    while "waiting for" not in lines[-1]:
        line = proc.stdout.readline()
        assert line, f"--wait ended early: {lines}"
        lines.append(line)
    assert any("guardrails pass (mode approve)" in line for line in lines)
    assert "by role soc-analyst until " in lines[-1]
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=30)[0]
    assert proc.returncode == 130
    assert f"the run goes on. See where it stands: handrail show {run_id}" in rest
    _, shown = cli(stack_env, "show", run_id)
    assert shown["state"] == "awaiting_approval"
    cli(stack_env, "deny", run_id, "--as", "bob", "--reason", "test over")


def test_wait_follows_to_the_outcome(stack_env):
    env = {**stack_env, "COLUMNS": "80"}
    proc = subprocess.Popen([_handrail_exe(), "run", "egress-block", "--ip", "203.0.113.64", "--reason", "to the end",
                             "--requested-by", "alice", "--wait", "--ttl", "1h"], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first = proc.stdout.readline()
    run_id = first.split()[-1]
    wait_show(stack_env, run_id, "awaiting_approval")
    cli(stack_env, "approve", run_id, "--as", "bob")
    out = first + proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    assert ": applied; expires " in out and "run: completed" in out


def test_temporal_agrees_with_handrail_for_ttl_runs_and_rollbacks(stack_env):
    import asyncio

    from temporalio.client import Client, WorkflowExecutionStatus

    env = stack_env
    _, started = cli(env, "run", "egress-block", "--ip", "203.0.113.65", "--reason", "ttl truth",
                     "--requested-by", "alice", "--ttl", "2h")
    run_id = started["run_id"]
    wait_show(env, run_id, "awaiting_approval")
    cli(env, "approve", run_id, "--as", "bob")
    shown = wait_show(env, run_id, "completed")
    assert shown["summary"]["expiries_pending"] == 1 and shown["steps"][0]["expires_at"]
    _, report = cli(env, "rollback", run_id, "--as", "carol")
    assert report["state"] == "rolled_back"
    # the expiry workflow Handrail names is no run, but `show` says what it is rather than "not known"
    _, expiry = cli(env, "show", f"expiry-{run_id}")
    assert expiry["type"] == "ExpireChanges" and expiry["status"] == "running" and not expiry["runbook_run"]
    assert expiry["expires"]["run_id"] == run_id and len(expiry["expires"]["changes"]) == 1, expiry
    assert expiry["expires"]["changes"][0]["reverted_at"], expiry  # the rollback got there first
    shown_text = text(env, "show", f"expiry-{run_id}")
    assert shown_text.returncode == 0 and f"It reverts the changes of run {run_id}" in shown_text.stdout
    # `show` folds the rollback into the step: no stale "applied" or expiry, and says who, when and which run
    shown = wait_show(env, run_id, "rolled_back")
    assert shown["steps"][0]["state"] == "rolled_back" and shown["steps"][0]["expires_at"] is None
    assert shown["rollback"]["requested_by"] == "carol" and shown["rollback"]["rollback_ids"] == [f"rollback-{run_id}"]
    out = text(env, "show", run_id).stdout
    words = " ".join(out.split())
    assert "rolled back by carol at " in words and "tool state matches the recorded before-state" in words
    assert "rollback requested by carol at " in words and f"rollback run: handrail show rollback-{run_id}" in words
    assert "expires" not in out and "applied" not in out and not _lines_fit(out), out

    async def temporal_view():
        client = await Client.connect(env["HANDRAIL_TEMPORAL_ADDRESS"])
        run = await client.get_workflow_handle(run_id).describe()
        expiry = await client.get_workflow_handle(f"expiry-{run_id}").describe()
        found = []
        for _ in range(60):  # visibility is eventually consistent
            found = [w.id async for w in client.list_workflows('HandrailState="rolled_back"')]
            if f"rollback-{run_id}" in found:
                break
            await asyncio.sleep(0.3)
        return run.status, expiry.status, expiry.search_attributes.get("HandrailState"), found

    run_status, expiry_status, expiry_state, rolled_back = asyncio.run(temporal_view())
    assert run_status == WorkflowExecutionStatus.COMPLETED  # not held open by its TTL
    assert expiry_status == WorkflowExecutionStatus.RUNNING and expiry_state == ["expiring"]
    assert f"rollback-{run_id}" in rolled_back
    # Temporal still says `completed` for the run; `handrail runs` says what the ledger knows
    listed = {r["run_id"]: r for r in wait_runs(env, run_id, "rolled_back", "--state", "rolled_back",
                                                  "--runbook", "egress-block,rollback")}
    assert listed[run_id]["handrail_state"] == "completed" and listed[run_id]["subject"] == "203.0.113.65"
    assert listed[f"rollback-{run_id}"]["state"] == "rolled_back"
    assert {r["state"] for r in listed.values()} == {"rolled_back"}


# -- item 9: telling the approvers (the notice's own command approves) ----------------------
def _told(env, run_id: str, event: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        _, doc = cli(env, "lab", "list", "notifications")
        found = [n for n in doc["items"] if n["run_id"] == run_id and n["event"] == event]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no {event} notification for {run_id}: {doc}"
        time.sleep(0.3)


def test_the_approvers_are_told_with_the_command_then_the_outcome(stack_env):
    env = stack_env
    _, started = cli(env, "run", "egress-block", "--ip", "203.0.113.71", "--reason", "notify e2e",
                     "--requested-by", "alice")
    run_id = started["run_id"]
    wait_show(env, run_id, "awaiting_approval")
    waiting = _told(env, run_id, "waiting")
    assert "alice" not in waiting["recipients"] and "bob" in waiting["recipients"]
    command = f"handrail approve {run_id} --step s01-firewall.egress_block --as bob"
    assert command in waiting["text"]
    table = subprocess.run([_handrail_exe(), "lab", "list", "notifications"], env={**env, "COLUMNS": "80"},
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert table.returncode == 0 and run_id in table.stdout  # the id whole, on its own line if need be
    assert all(len(line) <= 80 for line in table.stdout.splitlines())

    cli(env, *command.split()[1:])  # exactly what the notice said to type
    wait_show(env, run_id, "completed")
    assert _told(env, run_id, "approved")["outcome"] == "approved by bob"
