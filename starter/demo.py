"""`make demo`: the trust ladder in two minutes, with the real commands printed as it goes.

Brings the stack up detached (or reuses a healthy one), then: a block that waits for
approval and is approved by a second analyst after two refused decisions; a block of the
SaaS CRM's range that a guardrail denies with an alert; a rollback. The stack stays up
for exploring; `handrail down` stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone

from rich.console import Console

from handrail.ops.config import load_settings

console = Console()


def _handrail() -> list[str]:
    exe = shutil.which("handrail") or os.path.join(os.path.dirname(sys.executable), "handrail")
    return [exe]


def sh(*args: str, check: bool = True, quiet: bool = False) -> dict | list | None:
    """Run one CLI command with --json, print it as a person would type it, return its JSON."""
    shown = "handrail " + " ".join(a if " " not in a else repr(a) for a in args)
    console.print(f"[dim]$ {shown}[/]")
    proc = subprocess.run(_handrail() + list(args) + ["--json"], capture_output=True, text=True)
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else None
    except ValueError:
        data = None
    if check and proc.returncode != 0:
        message = (data or {}).get("error") if isinstance(data, dict) else proc.stderr.strip()
        console.print(f"[red]{message or proc.stderr.strip()}[/]")
        raise SystemExit(1)
    if not quiet and isinstance(data, dict) and "why" in data:
        verdict = {True: "[green]accepted[/]", False: "[red]rejected[/]", None: "[yellow]sent[/]"}[data["accepted"]]
        console.print(f"  → {verdict}: {data['why']}")
    return data


def wait_until(args: list[str], predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        proc = subprocess.run(_handrail() + args + ["--json"], capture_output=True, text=True)
        data = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None
        if data is not None and predicate(data):
            return data
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: gave up waiting for `handrail {' '.join(args)}`")
        time.sleep(0.3)


def edl() -> list[str]:
    state = subprocess.run(_handrail() + ["lab", "state", "--json"], capture_output=True, text=True)
    entries = json.loads(state.stdout)["tools"]["firewall"]
    items = entries.get("egress", entries.get("entries", entries)) if isinstance(entries, dict) else entries
    return [e["value"] if isinstance(e, dict) else str(e) for e in items]


def lab_alerts() -> list[dict]:
    state = subprocess.run(_handrail() + ["lab", "state", "--json"], capture_output=True, text=True)
    alerts = json.loads(state.stdout)["tools"].get("alerts", {}).get("alerts", {})
    return [{"id": key, **value} for key, value in alerts.items()]


def main(as_json: bool = False) -> dict:
    """Run the walk-through; with `as_json` the narration goes to stderr and a summary is returned."""
    if as_json:
        console.file = sys.stderr
    now = datetime.now(timezone.utc)
    stamp = now.strftime("%H:%M:%S")
    ip = f"203.0.113.{20 + int(now.timestamp()) % 200}"  # a fresh address when the demo is run again
    console.rule("[bold]Handrail demo: the trust ladder")
    from starter.keys_cmd import demo_policy

    settings = load_settings()
    policy = demo_policy(settings, settings.policy_path)
    os.environ["HANDRAIL_POLICY"] = str(policy)  # the stack and every command below use the demo keys
    console.print(f"Demo signing keys for the policy's users are in {settings.home / 'keys'}; "
                  f"{policy} lists them.", highlight=False)
    status = subprocess.run(_handrail() + ["status", "--json"], capture_output=True, text=True)
    healthy = status.returncode == 0 and all(
        c.get("healthy") for c in json.loads(status.stdout or "{}").get("components", {}).values()
    ) and json.loads(status.stdout or "{}").get("components")
    if not healthy:
        info = sh("up", "--detach")
        console.print(f"Stack is up. Web UI: [bold]{info.get('ui_url')}[/]")
    else:
        console.print("Reusing the stack that is already running.")

    console.rule("1. A block that needs a human (mode: approve)")
    run = sh("run", "egress-block", "--ip", ip, "--reason", f"C2 callback from laptop-042 (demo {stamp})",
             "--requested-by", "alice")
    run_id = run["run_id"]
    wait_until(["show", run_id], lambda s: s["state"] == "awaiting_approval")
    for row in sh("pending") or []:
        if row["run_id"] == run_id:
            console.print(f"  → waiting: {row['action']} {row['target']} asked by {row['requested_by']} "
                          f"({row['approvals']} approvals; {row['why']})")
    try:  # the approvers are told at once (the lab's sink stands in for chat or e-mail)
        told = wait_until(["lab", "list", "notifications"],
                          lambda d: any(n["run_id"] == run_id for n in d.get("items", [])), timeout=10)
        notice = next(n for n in told["items"] if n["run_id"] == run_id)
        console.print(f"  → notified {', '.join(notice['recipients'])}: {notice['approve_command']}", highlight=False)
    except SystemExit:
        console.print("  → the approvers' notice has not arrived (see `handrail lab list notifications`)")
    shown = sh("show", run_id, quiet=True)
    waiting = next(s for s in shown["steps"] if s["state"] == "awaiting_approval")
    console.print(f"  → each decision is signed over the change digest {waiting['change_digest'][:23]}…")
    console.print("dave has no approver role, and alice asked for the block herself (each signs with their key):")
    sh("approve", run_id, "--as", "dave", check=False)
    sh("approve", run_id, "--as", "alice", check=False)
    console.print("bob is a second analyst; his key signs the decision:")
    sh("approve", run_id, "--as", "bob", "--reason", "matches the EDR detection")
    shown = wait_until(["show", run_id], lambda s: s["state"] == "completed")
    console.print(f"  → run {run_id} is [green]{shown['state']}[/]; EDL now lists {ip}: {ip in edl()}")

    console.rule("2. A block a guardrail refuses (the SaaS CRM's range)")
    refused = sh("run", "egress-block", "--ip", "161.71.20.5", "--reason", f"feed says so (demo {stamp})",
                 "--requested-by", "alice", check=False) or {}
    console.print(f"  → [red]{refused.get('error')}[/]")

    console.rule("3. Roll back the first run")
    for item in sh("rollback", run_id, "--dry-run")["plan"]:
        console.print(f"  → plan: undo {item['change']} with {item['undo']}")
    report = sh("rollback", run_id, "--as", "carol")
    console.print(f"  → {report['state']}; EDL still lists {ip}: {ip in edl()}")

    console.rule("4. The audit ledger")
    verify = sh("audit", "verify")
    console.print(f"  → hash chain intact over {verify['rows']} rows")

    settings = load_settings()
    console.rule("Where to look")
    console.print(f"Web UI: {settings.ui_url}/namespaces/{settings.namespace}/workflows — filter with "
                  'HandrailState="awaiting_approval" or HandrailRunbook="egress-block".')
    console.print(f"Timeline: handrail show {run_id}")
    console.print("The stack keeps running on the demo policy; commands you type now use it too (until "
                  "`handrail down`): try `handrail run egress-block --ip 198.51.100.23 --reason test "
                  "--requested-by alice`, then `handrail approve RUN --as bob`.", highlight=False)
    return {"approved_run": run_id, "approved_state": shown["state"], "rolled_back": report["state"],
            "refused": refused.get("error"), "audit_rows": verify["rows"],
            "ui_url": f"{settings.ui_url}/namespaces/{settings.namespace}/workflows"}


if __name__ == "__main__":
    main()
