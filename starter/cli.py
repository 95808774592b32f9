"""`handrail`: start runbooks, approve or deny, inspect, roll back, and run the local stack.

Every command takes --json (then prints exactly one JSON document); without it, tables.
Exit status: 0 ok, 1 refused or failed, 2 usage error. Errors are one sentence.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from handrail.shown import one_line

# Only what building the typer app needs is imported here: every `handrail` invocation pays for
# this module. Temporal's client, the workflows, the ledger and the runbooks are imported inside
# the commands that use them (tests/test_cli_startup.py keeps it so).
from starter import (
    drift_cmd,
    exfiltration_cmd,
    hostile_cmd,
    intel_cmd,
    keys_cmd,
    lab_cmd,
    ledger_cmd,
    phishing_cmd,
    phishing_triage,
    policy_cmd,
    popular_cmd,
    privilege_cmd,
    rogue_cmd,
    runs_cmd,
    tools_cmd,
    trust_cmd,
)
from starter import help_text as _help_text  # noqa: F401  (flags shown without a type)
from starter.common import JSON, _client, _render_status, _settings, _started
from starter.output import USAGE, command, console, fail, print_json, shown
from starter.tables import print_url

app = typer.Typer(
    help="Handrail: trustable security automation. Runbooks run as durable Temporal workflows; "
    "every change passes one step gate (guardrails, then approval by trust mode) and can be rolled back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(help="Start a runbook.", no_args_is_help=True)
audit_app = typer.Typer(help="Check and export the tamper-evident audit ledger.", no_args_is_help=True)
policy_app = typer.Typer(help="Validate the policy file.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (measure, never assert).", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(audit_app, name="audit")
app.add_typer(policy_app, name="policy")
app.add_typer(bench_app, name="bench")

@app.command()
@command
def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="Return once healthy; `handrail down` stops it."),
    schedules: bool = typer.Option(
        False, "--schedules/--paused-schedules",
        help="Create the pollers and the intel sync active (default: created paused; "
        "`handrail schedule NAME --unpause` starts one)."),
    as_json: bool = JSON,
):
    """Start Temporal (dev server, SQLite), the lab and the worker, and supervise them."""
    from handrail.ops import schedules as schedule_defs
    from handrail.ops import stack

    settings = _settings()
    from starter.stack_view import all_healthy, print_status

    running = stack.status(settings)
    if running.get("running") and all_healthy(running):  # already up: say so, with where to look
        if as_json:
            print_json({**running, "healthy": True, "already_running": True})
        else:
            console.print(f"[green]Handrail is already up[/] from {settings.home}.")
            print_status(console, running, f"{settings.ui_url}/namespaces/{settings.namespace}/workflows")
        return

    def ready(info):
        made, states = asyncio.run(_ensure_schedules(settings, schedule_defs, paused=not schedules))
        if as_json:
            print_json({**info.to_dict(), "schedules": made, "schedule_states": states})
        else:
            from starter.stack_view import schedules_line

            console.print(f"[green]Handrail is up[/] — Temporal {settings.temporal_address}, lab {settings.lab_url}")
            print_url(console, "Web UI", f"{settings.ui_url}/namespaces/{settings.namespace}/workflows")
            console.print(f"Logs: {settings.home / 'logs'}")
            line = schedules_line(states)
            if line:
                console.print(line, highlight=False)
            if not detach:
                console.print("Ctrl-C stops everything.")
        sys.stdout.flush()

    try:
        stack.start(settings, detach=detach, on_ready=ready)
    except stack.StackError as exc:
        fail(str(exc))


async def _ensure_schedules(settings, schedule_defs, paused: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Make sure every schedule exists; then what each one really is (`active`/`paused`), read back
    from Temporal: an existing schedule keeps its state whatever `--schedules` asked for."""
    from handrail.ops.temporal import connect
    from starter.stack_view import schedule_states

    client = await connect(settings)
    made = await schedule_defs.ensure_all(client, settings, paused=paused)
    return made, await schedule_states(client, made)


@app.command()
@command
def down(as_json: bool = JSON):
    """Stop the stack that `handrail up --detach` started from this HANDRAIL_HOME."""
    from handrail.ops import stack

    stopped = stack.stop(_settings())
    if as_json:
        print_json({"stopped": stopped})
    else:
        for line in stopped:
            console.print(line)


@app.command()
@command
def status(as_json: bool = JSON):
    """Show whether Temporal, the lab and the worker are running and answering."""
    from handrail.ops import stack
    from starter.stack_view import all_healthy, print_status

    info = stack.status(_settings())
    if as_json:
        print_json({**info, "healthy": all_healthy(info)})
    else:
        print_status(console, info)
    if not all_healthy(info):
        raise typer.Exit(1)


def _yes(value) -> str:
    return "[green]yes[/]" if value else "[red]no[/]"


@app.command()
@command
def demo(as_json: bool = JSON):
    """Bring the stack up (detached) and walk through approval, a guardrail denial and a rollback."""
    from starter.demo import main as run_demo

    summary = run_demo(as_json=as_json)
    if as_json:
        print_json(summary)


# -- runbooks -----------------------------------------------------------------------------
@run_app.command("egress-block")
@command
async def run_egress_block(
    ip: str = typer.Option(..., "--ip", help="Address or network to block, e.g. 203.0.113.7 or 198.51.100.0/24."),
    reason: str = typer.Option(..., "--reason", help="Why: it is kept in the ledger and shown to approvers."),
    requested_by: Optional[str] = typer.Option(
        None, "--requested-by",
        help="Check that the signing key (HANDRAIL_SIGNING_KEY or HANDRAIL_HOME/keys/USER_ed25519) "
             "is this requester's; the request is signed."),
    ttl: Optional[str] = typer.Option(None, "--ttl", help="Revert automatically after this long, e.g. 24h, 30d."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the run to finish and print its result."),
    as_json: bool = JSON,
):
    """Block an IP on the egress firewall (EDL) through the step gate."""
    from starter import ops

    settings = _settings()
    client = await _client(settings)
    handle = await ops.start_egress_block(client, settings, ip, reason, requested_by, ttl)
    await _started(client, settings, handle, wait, as_json)


# -- approvals ----------------------------------------------------------------------------
@app.command()
@command
async def pending(as_json: bool = JSON):
    """List the runs waiting for a human decision."""
    from handrail.ops.liveness import live_workers, no_worker_sentence
    from starter import ops
    from starter.console_views import enrich_pending

    settings = _settings()
    client = await _client(settings)
    rows = enrich_pending(await ops.pending(client, settings), settings)
    if as_json:
        print_json(rows)
        return
    if await live_workers(client, settings) == 0:
        console.print(f"[yellow]{no_worker_sentence(settings.task_queue)}[/]")
    if not rows:
        console.print("Nothing is waiting for approval.")
        return
    from starter.console_views import print_pending

    print_pending(console, rows)


def _decide(run_id: str, approver: str | None, approve: bool, step: str | None, reason: str, as_json: bool,
            key: Optional[Path] = None):
    async def body():
        from handrail.ops.temporal import TemporalUnavailable
        from starter import ops, signing

        settings = _settings()
        signer = signing.load_signer(settings, key, approver)  # the key says who decides; --as only checks

        sign = ops.decision_signer(settings, run_id, signer, approve, step, reason)
        try:
            client = await _client(settings)
        except TemporalUnavailable as exc:
            fail(ops.not_delivered(run_id, exc))
        result = await ops.decide(client, run_id, signer.user, approve, step, reason, sign=sign)
        result["signer"], result["key"] = signer.user, signer.public.fingerprint
        if as_json:
            print_json(result)
        elif result["accepted"]:
            step_note = (f" Step {result['step']} is {result['step_state']} ({result['approvals']} approvals);"
                         if result.get("step") else "")
            run_note = (f" Run is still {result['state']}; follow it with `{result['follow']}`."
                        if result.get("follow") else f" Run is now {result['state']}.")
            console.print(f"[green]Accepted[/]: {shown(result['why'])}.{shown(step_note)}{shown(run_note)}")
        elif result.get("kept"):
            console.print(f"[yellow]Kept[/]: {shown(result['why'])}.")
        elif result["accepted"] is None:
            console.print(f"[yellow]Sent[/]: {shown(result['why'])}.")
        else:
            console.print(f"[red]Rejected[/]: {shown(result['why'])}.")
        if not result["accepted"] and not result.get("kept"):
            raise typer.Exit(1)

    return body()


@app.command()
@command
def approve(
    run_id: str = typer.Argument(..., help="The run id (see `handrail pending`)."),
    step: Optional[str] = typer.Option(None, "--step", help="The step to approve (default: the one waiting)."),
    as_: Optional[str] = typer.Option(None, "--as", help="Optional: check that your signing key belongs to this "
                                      "policy user (the key says who decides)."),
    reason: str = typer.Option("", "--reason", help="Why (kept in the audit)."),
    key: Optional[Path] = typer.Option(None, "--key", help="Signing key: an OpenSSH private key file, or a .pub "
                                       "file to sign through ssh-agent or a hardware key (default "
                                       "HANDRAIL_SIGNING_KEY, then HANDRAIL_HOME/keys/USER_ed25519)."),
    as_json: bool = JSON,
):
    """Approve a waiting step with a signed decision bound to its change digest (see `handrail show`)."""
    return _decide(run_id, as_, True, step, reason, as_json, key)


@app.command()
@command
def deny(
    run_id: str = typer.Argument(..., help="The run id (see `handrail pending`)."),
    step: Optional[str] = typer.Option(None, "--step", help="The step to deny (default: the one waiting)."),
    as_: Optional[str] = typer.Option(None, "--as", help="Optional: check that your signing key belongs to this "
                                      "policy user (the key says who decides)."),
    reason: str = typer.Option(..., "--reason", help="Why (required; kept in the audit)."),
    key: Optional[Path] = typer.Option(None, "--key", help="Signing key (as for `handrail approve`)."),
    as_json: bool = JSON,
):
    """Deny a waiting step with a signed decision; the run compensates what it already changed."""
    return _decide(run_id, as_, False, step, reason, as_json, key)


# -- inspection ---------------------------------------------------------------------------
@app.command()
@command
async def show(
    run_id: str = typer.Argument(..., help="The run id."),
    members: bool = typer.Option(False, "--members", help="List the members of the run's batch (set:) changes."),
    page: int = typer.Option(1, "--page", min=1, help="With --members: which page."),
    per_page: int = typer.Option(50, "--per-page", min=1, help="With --members: members per page."),
    as_json: bool = JSON,
):
    """A run's timeline: steps, guardrail verdicts, decisions, changes and state."""
    from handrail.ops.temporal import TemporalUnavailable
    from starter import ops
    from starter.workflow_view import NotARun, workflow_lines

    settings = _settings()
    try:
        client, down = await _client(settings), ""
    except TemporalUnavailable as exc:  # the ledger still answers: show what it recorded
        client, down = None, str(exc)
    try:
        status = await ops.run_status(client, settings, run_id, down)
    except NotARun as other:  # a workflow Temporal knows (expiry-*, a poll, an intake): what it is
        if as_json:
            print_json(other.doc)
        else:
            for line in workflow_lines(other.doc):
                console.print(one_line(line), highlight=False, markup=False)
            print_url(console, "Web UI", f"{settings.ui_url}/namespaces/{settings.namespace}/workflows/{run_id}")
        return
    if members:
        from starter.console_views import members_page, print_members

        doc = members_page(status, settings, page, per_page)
        print_json(doc) if as_json else print_members(console, doc)
        return
    if as_json:
        from starter.console_views import with_batches

        print_json(with_batches(status, settings))
    else:
        _render_status(status, settings)


@app.command()
@command
async def rollback(
    run_id: str = typer.Argument(..., help="The run to roll back."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan only; change nothing."),
    as_: Optional[str] = typer.Option(None, "--as", help="Who asks for the rollback (default HANDRAIL_USER)."),
    as_json: bool = JSON,
):
    """Undo a run's changes, newest first, each inverse through the gate (guardrails, approvals);
    checks each tool is back in its before-state. Only the users the policy's settings.rollback allows, never the
    run's requester or an excluded decider."""
    from starter import ops

    settings = _settings()
    if dry_run:
        plan = ops.rollback_plan(settings, run_id)
        if as_json:
            print_json({"run_id": run_id, "dry_run": True, "plan": plan})
            return
        from starter.tables import print_rows

        console.print(f"Rollback plan for {shown(run_id)} (nothing changed):")
        # records when the table does not fit: a change, its inverse and the before-state are read whole
        print_rows(console, ("change", "undo", "before"),
                   [(shown(item["change"]), shown(item["undo"]), shown(json.dumps(item["before"]))) for item in plan])
        return
    report = await ops.rollback(await _client(settings), settings, run_id, as_ or settings.user)
    if as_json:
        print_json(report)
    else:
        console.print(f"Rollback of {shown(run_id)}: [bold]{shown(report.state)}[/]")
        for result in report.results:
            if result.kept:  # the detail says more: released, or handed over to which change
                done = f"kept: run {shown(result.held_by_run)} still relies on it"
            else:
                done = "reverted" if result.reverted else "not reverted"
            console.print(f" - {shown(result.change_id)}: {done}; {shown(result.detail)}")
        if report.waiting:
            console.print(f" - {shown(report.waiting)}")
    if report.state in ("needs_attention", "denied", "partly_rolled_back"):
        raise typer.Exit(1)


# -- audit and policy ---------------------------------------------------------------------
@audit_app.command("verify")
@command
def audit_verify(
    signatures: bool = typer.Option(False, "--signatures", help="Also re-verify every accepted decision's SSH "
                                    "signature against the keys of the policy in force for its step."),
    as_json: bool = JSON,
):
    """Walk the hash chain, check change and revert records against it, and check the ledger
    against the signed checkpoints (a removed tail or a rewritten chain); names the first bad one."""
    from handrail.gate.checkpoints import verify_ledger
    from handrail.gate.ledger import open_ledger

    settings = _settings()
    ledger = open_ledger(settings)
    result = ledger.verify()
    checkpoints = verify_ledger(settings.home, ledger)
    signed = None
    acts, act_failures = 0, []
    if signatures:
        from handrail.gate.decision_audit import verify_decision_signatures
        from handrail.trust.attest import verify_acts

        signed = verify_decision_signatures(ledger.audit_rows())
        acts, act_failures = verify_acts(ledger.audit_rows())
    ok = result.ok and checkpoints.ok and (signed is None or signed.ok) and not act_failures
    if as_json:
        doc = {"ok": ok, "rows": result.rows, "first_bad_seq": result.first_bad_seq,
               "reason": result.reason or checkpoints.reason, "bad_change": result.bad_change,
               "checkpoints": checkpoints.checked, "bad_checkpoint": checkpoints.bad}
        if signed is not None:
            doc["signatures"] = {"ok": signed.ok and not act_failures, "decisions": signed.checked,
                                 "failures": signed.failures, "trust_acts": acts, "trust_act_failures": act_failures}
        print_json(doc)
    else:
        if not result.ok and result.bad_change:
            console.print(f"[red]The ledger record of change {shown(result.bad_change)} was tampered with[/]: "
                          f"{shown(result.reason)}.")
        elif not result.ok:
            console.print(f"[red]Audit row {result.first_bad_seq} was tampered with[/]: {shown(result.reason)}.")
        elif not checkpoints.ok:
            console.print(f"[red]The audit no longer matches its signed checkpoints[/]: {shown(checkpoints.reason)}.")
        else:
            console.print(f"[green]Audit chain intact[/]: {result.rows} rows verified, "
                          f"{checkpoints.checked} signed checkpoint(s) matched.")
        if signed is not None and signed.ok:
            console.print(f"[green]Decision signatures verify[/]: {signed.checked} accepted decision(s).")
        for failure in (signed.failures if signed is not None else []):
            console.print(f"[red]Decision in row {failure['seq']} ({shown(failure['run_id'])} "
                          f"{shown(failure['step_id'])}) does not verify[/]: {shown(failure['why'])}.", highlight=False)
        if signed is not None and acts and not act_failures:
            console.print(f"[green]Trust acts verify[/]: {acts} signed mode change(s) and review mark(s).")
        for failure in act_failures:
            console.print(f"[red]{shown(failure['event'])} in row {failure['seq']} (by {shown(failure['by'])}) "
                          f"does not verify[/]: {shown(failure['why'])}.", highlight=False)
    if not ok:
        raise typer.Exit(1)


@audit_app.command("export")
@command
def audit_export(
    run_id: Optional[str] = typer.Option(None, "--run", help="Only this run's events."),
    as_json: bool = typer.Option(True, "--json", show_default=False,
                                 help="JSON lines: the only format, so always on."),
):
    """Write the audit ledger as JSON lines (one event per line) to stdout."""
    from handrail.gate.ledger import open_ledger

    ledger = open_ledger(_settings())
    for row in ledger.audit_rows(run_id):
        sys.stdout.write(json.dumps(row, sort_keys=True, default=str) + "\n")


def _check_settings_sections(policy) -> None:
    """The `[settings.*]` tables belong to runbooks; each validates its own (PolicyError on a bad one)."""
    from handrail.gate.rollback import check_policy as rollback_settings
    from handrail.intel.config import intel_settings
    from handrail.notify.settings import notify_settings
    from handrail.runbooks.exfiltration import check_policy as exfiltration_settings
    from handrail.trust.advice import trust_settings

    for check in (exfiltration_settings, intel_settings, trust_settings, rollback_settings, notify_settings):
        check(policy)


@policy_app.command("check")
@command
def policy_check(
    file: Optional[Path] = typer.Argument(None, help="Policy file (default HANDRAIL_POLICY or ./policy.toml)."),
    as_json: bool = JSON,
):
    """Validate a policy file and summarise the trust mode of each action kind."""
    from handrail.gate.policy import load_policy

    path = file or _settings().policy_path
    policy = load_policy(path)
    _check_settings_sections(policy)
    from starter.policy_cmd import signing_status

    signing = signing_status(_settings().home, path)
    if not signing["ok"]:
        fail(signing["why"].rstrip(".") + ".")
    rows: list[dict[str, Any]] = []
    for kind in sorted(policy.actions):
        gate = policy.gate_policy(kind)
        rows.append({
            "kind": kind, "mode": gate.mode.value, "pinned": gate.pinned,
            "approvers": gate.approvers.model_dump(), "required_approvals": gate.required_approvals,
            "guardrails": [g["type"] for g in policy.guardrails_for(kind)],
        })
    warnings = _unbounded_batches(rows, policy)
    if as_json:
        print_json({"ok": True, "file": str(path), "users": sorted(policy.users), "actions": rows,
                    "warnings": warnings})
        return
    console.print(f"[green]{path} is valid[/]: {len(policy.users)} users, {len(rows)} action kinds.")
    table = Table("kind", "mode", "pinned", "approvals", "guardrails")
    for r in rows:
        table.add_row(r["kind"], r["mode"], "yes" if r["pinned"] else "", str(r["required_approvals"]),
                      ", ".join(r["guardrails"]))
    console.print(table)
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def _unbounded_batches(rows: list[dict[str, Any]], policy) -> list[str]:
    """One sentence per kind the intel sync blocks or unblocks with in batches (`set:` targets) that
    no human sees whatever the update's size: not `approve`, and no `max_batch` guardrail (a
    `rate_limit` counts a batch as one change), or one the sync's parts can never exceed
    (`change_max_members` splits an update into parts of at most that many)."""
    from handrail.intel.config import intel_settings
    from handrail.intel.messages import ADD_ORDER, REMOVE_KIND

    part = intel_settings(policy).change_max_members
    batch_kinds = {*ADD_ORDER, *(REMOVE_KIND[kind] for kind in ADD_ORDER)}
    warnings = []
    for r in rows:
        if r["kind"] not in batch_kinds or r["mode"] == "approve":
            continue
        limits = [float(g.get("max", 5000)) for g in policy.guardrails_for(r["kind"]) if g.get("type") == "max_batch"]
        if not limits:
            warnings.append(f"{r['kind']} ({r['mode']}) has no max_batch guardrail: an intel sync batch of any "
                            "size, a feed's whole content included, is applied without a human.")
        elif part <= min(limits):
            warnings.append(f"{r['kind']} ({r['mode']}): its max_batch ({min(limits):g}) never holds, as "
                            f"settings.intel.change_max_members ({part}) splits every update into parts no larger; "
                            "an update of any size is applied without a human.")
    return warnings


# -- schedules ----------------------------------------------------------------------------
@app.command()
@command
async def schedule(
    name: str = typer.Argument(..., help="Which schedule: see `handrail schedule --help`."),
    every: Optional[str] = typer.Option(None, "--every", help="Create it, or change its interval (e.g. 1m, 1h)."),
    pause: bool = typer.Option(False, "--pause", help="Pause it."),
    unpause: bool = typer.Option(False, "--unpause", help="Resume it."),
    trigger: bool = typer.Option(False, "--trigger", help="Run it once now."),
    show_: bool = typer.Option(False, "--show", help="Show it (the default)."),
    as_json: bool = JSON,
):
    """Manage a poller or sync schedule (overlap policy skip)."""
    from starter.schedule_cmd import schedule_command

    await schedule_command(name, every, pause, unpause, trigger, as_json)


# -- benchmarks ---------------------------------------------------------------------------
def _print_bench(result: dict, as_json: bool) -> None:
    """A bench's figures: its JSON document, or one `key: value` line each."""
    if as_json:
        print_json(result)
    else:
        for key, value in result.items():
            console.print(f"{key}: {value}")


@bench_app.command("runbooks")
@command
def bench_runbooks(
    runs: int = typer.Option(200, "--runs", help="How many runs of each kind per round."),
    rounds: int = typer.Option(2, "--rounds", min=1, help="Alternating bare/gated batches of --runs each."),
    workers: int = typer.Option(0, "--workers", min=0, max=16,
                                help="Also measure this many worker processes on a PostgreSQL ledger, "
                                     "next to one worker process on SQLite (0: the one in-process worker)."),
    ledger: str = typer.Option("embedded", "--ledger",
                               help="With --workers: the PostgreSQL URL, or 'embedded' to start one for the bench."),
    as_json: bool = JSON,
):
    """Throughput of fully automated egress-block runs against a minimal bare workflow."""
    from starter.bench import bench_runbooks as run_bench
    from starter.bench import stdout_to_stderr

    if workers and ledger != "embedded" and not ledger.startswith(("postgresql://", "postgres://")):
        fail("--ledger takes a postgresql:// URL or 'embedded'.", code=2)
    with stdout_to_stderr():  # the server and the SDK's core write to stdout; --json promises only JSON
        if workers:
            from starter.bench_scale import bench_scale

            result = asyncio.run(bench_scale(runs, rounds, workers, ledger))
        else:
            result = asyncio.run(run_bench(runs, rounds))
    _print_bench(result, as_json)


@bench_app.command("chaos")
@command
def bench_chaos(
    runs: int = typer.Option(50, "--runs", min=1, max=2000, help="How many egress-block runs."),
    seed: int = typer.Option(15, "--seed", help="Seed of the random kills, approvals and faults."),
    mode: str = typer.Option("approve", "--mode", help="approve: runs approved at random moments; guarded: "
                             "runs no person decides (one activity per step), started at random moments."),
    ledger: str = typer.Option("sqlite", "--ledger", help="sqlite, or postgresql: the ledger on a PostgreSQL the "
                               "benchmark starts and restarts once among the other faults."),
    as_json: bool = JSON,
):
    """Kill the worker, restart Temporal (and the ledger's database), fail the firewall; then report
    lost/duplicates/drift/stuck."""
    from starter.bench import stdout_to_stderr
    from starter.chaos import LEDGERS, MODES, run_chaos

    if mode not in MODES:
        fail(f"--mode must be one of {', '.join(MODES)}.", USAGE)
    if ledger not in LEDGERS:
        fail(f"--ledger must be one of {', '.join(LEDGERS)}.", USAGE)
    with stdout_to_stderr():
        result = asyncio.run(run_chaos(runs, seed, mode, ledger))
    _print_bench(result, as_json)


@bench_app.command("signatures")
@command
def bench_signatures_cmd(
    rounds: int = typer.Option(2000, "--rounds", min=1, help="Verifications per key kind."),
    as_json: bool = JSON,
):
    """Time the verification of one signed decision (document + SSH signature), per key kind."""
    from starter.bench import bench_signatures

    result = bench_signatures(rounds)
    _print_bench(result, as_json)


@bench_app.command("baseline")
@command
def bench_baseline(
    rows: int = typer.Option(1_000_000, "--rows", help="Size of the synthetic ledger."),
    as_json: bool = JSON,
):
    """Time the baseline over a synthetic ledger of ROWS rows (indexes and SQL aggregation)."""
    from handrail.trust.synth import bench_baseline as run_bench

    result = run_bench(rows)
    _print_bench(result, as_json)


# Commands that live in their own modules: each has `register(app, run_app)`.
for _module in (lab_cmd, trust_cmd, exfiltration_cmd, phishing_cmd, phishing_triage, popular_cmd, privilege_cmd,
                rogue_cmd, intel_cmd, tools_cmd, drift_cmd, hostile_cmd, keys_cmd, policy_cmd, ledger_cmd, runs_cmd):
    _module.register(app, run_app)


def main() -> None:
    """Run the CLI and leave without interpreter finalisation.

    The Temporal SDK's native runtime can abort while Python finalises (SDK issue #300),
    which would turn a clean exit status into SIGABRT; the output is complete by then, so
    flush and leave directly.
    """
    code = 0
    from starter.entry import run

    try:
        code = run(app)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
