"""`handrail runs`: the recent runbook runs, newest first, without the Web UI.

    handrail runs [--state S[,S…]] [--runbook R[,R…]] [--since 2d] [--limit N] [--json]

The list comes from Temporal visibility: only runbook workflow types (those built on the
step gate), filtered by the search attributes every run carries (HandrailState,
HandrailRunbook). The query is built from validated names only: a state or runbook outside
the known sets is a usage error, never text pasted into the query.

Temporal's HandrailState is not always the whole truth, so each run's state is read the way
`handrail show` reads it: a run rolled back (by `rollback-RUN`) still says `completed` in
Temporal, and a run whose changes all expired (by `expiry-RUN`) too; the ledger knows, and the
list shows `rolled_back` / `expired`. A run terminated or cancelled in Temporal shows that,
not the state it was in when it stopped.

One row per run id. Temporal may hold several executions of one id: a refused rollback
request is an execution of `rollback-RUN` that ended at once (so that someone allowed may ask
again). The row is the latest execution, in the state `handrail show` gives it
(`handrail.gate.rollback_outcome.rollback_view`): the rollback's outcome, or `refused` with
the reason; the requests refused before it are folded into it (`refused_before`: who, when,
why; the table's note counts them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Optional

import typer

from handrail.gate.models import RunState  # the --state choices in the help text
from starter.output import USAGE, command, console, fail, print_json

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecution

# Runbook workflow types (the RunbookWorkflow subclasses the worker registers) and the runbook
# each runs as; tests/test_runs_query.py checks this against worker.WORKFLOWS.
RUNBOOK_WORKFLOWS = {
    "EgressBlock": "egress-block",
    "PhishingResponse": "phishing",
    "ExfiltrationResponse": "exfiltration",
    "ExfiltrationFollowUp": "exfiltration-follow-up",
    "PrivilegeGuard": "privilege-guard",
    "RogueDevice": "rogue-device",
    "IntelSync": "intel-sync",
    "IntelApply": "intel-apply",
    "RollbackRun": "rollback",
}
RUNBOOKS = tuple(sorted(RUNBOOK_WORKFLOWS.values()))
ROLLBACK_WORKFLOW = "RollbackRun"

# What Temporal's status (WorkflowExecutionStatus, by name: temporalio is not imported to build
# the CLI) says when a run was stopped from outside, or its workflow failed: its HandrailState
# froze where it was, so the list shows this instead.
STOPPED = {
    "TERMINATED": "terminated",
    "CANCELED": "canceled",
    "TIMED_OUT": "timed_out",
    "FAILED": "failed",
}
EXPIRED = "expired"
STATES = tuple([s.value for s in RunState] + [EXPIRED, "terminated", "canceled", "timed_out"])
LIVE = {RunState.RUNNING.value, RunState.AWAITING_APPROVAL.value, RunState.WAITING_FOR_TOOL.value}
# Where a state is found in visibility: the HandrailStates such a run may carry there, and the
# Temporal statuses. A run the ledger says was rolled back may still say any outcome (a rollback
# may follow any), one whose changes all expired says `completed`; a stopped one its last state.
_ENDED = ("completed", "denied", "compensated", "failed", "rejected", "needs_attention", "rolled_back")
_FOUND_AS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "rolled_back": (_ENDED, ()),
    "needs_attention": (_ENDED, ()),
    EXPIRED: (("completed",), ()),
    "failed": (("failed",), ("Failed",)),
    "refused": ((), ("Failed",)),  # a refused rollback request fails its execution at once
    "terminated": ((), ("Terminated",)),
    "canceled": ((), ("Canceled",)),
    "timed_out": ((), ("TimedOut",)),
}

DEFAULT_LIMIT, MAX_LIMIT = 20, 500
SCAN_CAP = 20_000  # executions read from visibility at most, whatever the filters


def choices(values: list[str] | None, known: tuple[str, ...], flag: str) -> list[str]:
    """Each value of a repeatable, comma-separated option, checked against the known names."""
    picked: list[str] = []
    for value in values or []:
        for name in (part.strip() for part in value.split(",")):
            if not name:
                continue
            if name not in known:
                fail(f"{flag} {name[:40]!r} is not one Handrail knows; use one of: {', '.join(known)}.", USAGE)
            if name not in picked:
                picked.append(name)
    return picked


def _quoted(names) -> str:
    return ", ".join(f'"{name}"' for name in names)


def build_query(states: list[str] | None = None, runbooks: list[str] | None = None,
                since: datetime | None = None) -> str:
    """The visibility query for the filters; refuses (usage error) any state or runbook it does not know.

    A state the ledger may correct (rolled_back, needs_attention, expired) also asks for the
    HandrailStates such runs keep in Temporal; the rows are filtered again once corrected.
    """
    from handrail.gate.search import RUNBOOK_KEY, STATE_KEY

    states = choices(states, STATES, "--state")
    runbooks = choices(runbooks, RUNBOOKS, "--runbook")
    types = sorted(t for t, r in RUNBOOK_WORKFLOWS.items() if not runbooks or r in runbooks)
    clauses = [f"WorkflowType IN ({_quoted(types)})"]
    if runbooks:
        clauses.append(f"{RUNBOOK_KEY.name} IN ({_quoted(runbooks)})")
    if states:
        seen = sorted({s for state in states for s in _FOUND_AS.get(state, ((state,), ()))[0]})
        stopped = sorted({s for state in states for s in _FOUND_AS.get(state, ((), ()))[1]})
        either = ([f"{STATE_KEY.name} IN ({_quoted(seen)})"] if seen else []) + (
            [f"ExecutionStatus IN ({_quoted(stopped)})"] if stopped else [])
        clauses.append(either[0] if len(either) == 1 else f"({' OR '.join(either)})")
    if since is not None:
        clauses.append(f'StartTime >= "{since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"')
    return " AND ".join(clauses)


def state_from_ledger(visible: str, rows: list[dict[str, Any]]) -> str:
    """The run's state once the ledger is heard: its last rollback's outcome, as `handrail show`
    reads it, `needs_attention` when an expiry failed and the tool still holds the change, or
    `expired` when it completed and every change it made with a TTL has expired."""
    from handrail.gate.expiry_outcome import all_expired, failed_expiries
    from handrail.gate.rollback_outcome import rollback_outcome

    outcome = rollback_outcome(rows)
    if outcome is not None:
        return outcome.state.value
    if visible == RunState.COMPLETED.value and failed_expiries(rows):
        return RunState.NEEDS_ATTENTION.value  # a TTL that could not be undone: the change is still held
    if visible == RunState.COMPLETED.value and all_expired(rows):
        return EXPIRED
    return visible


def rollback_row(execution_id: str, execution_run: str | None, state: str, rows: list[dict[str, Any]],
                 ledger) -> dict[str, Any] | None:
    """What a rollback execution's row says beyond the rest: its state as `handrail show` gives it
    (`rollback_view`), the run it rolls back, why it was refused, the requests refused before it,
    and whether a later execution of its id supersedes it. None when the ledger heard of none."""
    from handrail.gate.rollback_outcome import rollback_attempts, rollback_view, rolled_back_runs

    for candidate in rolled_back_runs(execution_id):
        original = list(ledger.audit_rows(candidate)) if ledger is not None else []
        if not rollback_attempts(execution_id, original):
            continue
        finished = next((r for r in reversed(rows) if r["event"] == "run.finished"), None)
        data = (finished or {}).get("data") or {}
        view = rollback_view(execution_id, original, data.get("state") or state, data.get("summary"),
                             run=execution_run)
        return {
            "state": view.state or state,
            "rolls_back": candidate,
            "why": view.current.refused if view.current is not None else None,
            "refused_before": [r.request().model_dump(mode="json") for r in view.refused_before],
            "superseded": view.superseded,
        }
    return None


def _row(execution: WorkflowExecution, ledger) -> dict[str, Any]:
    from handrail.gate.kept_outcome import runs_note
    from handrail.gate.search import REQUESTER_KEY, RUNBOOK_KEY, STATE_KEY

    attrs = execution.typed_search_attributes
    visible = attrs.get(STATE_KEY) or ""
    rows = list(ledger.audit_rows(execution.id)) if ledger is not None else []
    stopped = STOPPED.get(execution.status.name) if execution.status else None
    if stopped and visible in LIVE | {""}:
        state = stopped  # stopped from outside: its HandrailState froze
    else:
        state = state_from_ledger(visible, rows)
    started = next((r for r in rows if r["event"] == "run.started"), None)
    subject = str(((started or {}).get("data") or {}).get("subject") or "")
    rollback = rollback_row(execution.id, execution.run_id, state, rows, ledger) \
        if execution.workflow_type == ROLLBACK_WORKFLOW else None
    if rollback is not None:
        state, subject = rollback["state"], subject or rollback["rolls_back"]
    extra = {} if rollback is None else {
        "why": rollback["why"], "refused_before": rollback["refused_before"], "_superseded": rollback["superseded"]}
    return {
        "run_id": execution.id,
        "runbook": attrs.get(RUNBOOK_KEY) or RUNBOOK_WORKFLOWS.get(execution.workflow_type, "?"),
        "state": state or "?",
        "handrail_state": visible or None,  # what Temporal's HandrailState says
        "temporal_status": execution.status.name.lower() if execution.status else None,
        "started_at": execution.start_time.isoformat(),
        "closed_at": execution.close_time.isoformat() if execution.close_time else None,
        "requested_by": attrs.get(REQUESTER_KEY) or "",
        "subject": subject,
        "kept": runs_note(rows) or None,  # changes undone for this run that another run still relies on
        **extra,
    }


def _open_ledger(settings):
    """The ledger, or None when nothing has run here yet or it cannot be reached (states stay Temporal's)."""
    from handrail.gate.ledger import open_ledger
    from handrail.gate.ledger_core import LedgerUnavailable

    if not settings.ledger_on_postgres and not settings.ledger_path.exists():
        return None
    try:
        return open_ledger(settings)
    except LedgerUnavailable:
        return None


async def list_runs(client: Client, settings, states: list[str] | None = None, runbooks: list[str] | None = None,
                    since: datetime | None = None, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """The `limit` newest runs (by start time) matching the filters.

    Visibility returns running executions first, then closed ones by close time, newest first
    (SQL and Elasticsearch alike). A run closes after it starts, so once `limit` runs are kept
    and a closed run closed before the oldest kept one started, nothing further can be newer:
    the scan stops there. If the order is ever otherwise, it reads on (up to SCAN_CAP).
    """
    from temporalio.service import RPCError

    query = build_query(states, runbooks, since)
    wanted = set(choices(states, STATES, "--state"))
    kept: list[tuple[datetime, dict[str, Any]]] = []
    ordered, last_close, scanned = True, None, 0
    ledger = _open_ledger(settings)
    try:
        async for execution in client.list_workflows(query, page_size=min(1000, max(100, 2 * limit))):
            close = execution.close_time
            if close is None:
                ordered = ordered and last_close is None  # running ones come first
            else:
                ordered = ordered and (last_close is None or close <= last_close)
                last_close = close
                if ordered and len(kept) >= limit and close < kept[-1][0]:
                    break
            scanned += 1
            if scanned > SCAN_CAP:
                break
            if len(kept) >= limit and execution.start_time <= kept[-1][0]:
                continue
            row = _row(execution, ledger)
            if row.pop("_superseded", False):  # a refused request a later one of its id followed: folded there
                continue
            if wanted and row["state"] not in wanted:
                continue
            same = next((i for i, (_, r) in enumerate(kept) if r["run_id"] == row["run_id"]), None)
            if same is not None:  # one row per run id: its latest execution
                if kept[same][0] >= execution.start_time:
                    continue
                del kept[same]
            kept.append((execution.start_time, row))
            kept.sort(key=lambda pair: pair[0], reverse=True)
            del kept[limit:]
    except RPCError as exc:
        fail(f"Temporal refused to list the runs ({str(exc).splitlines()[0] if str(exc) else exc.status}); "
             "are Handrail's search attributes registered (`handrail up` does it)?")
    finally:
        if ledger is not None:
            ledger.close()
    return [row for _, row in kept]


def print_runs(rows: list[dict[str, Any]]) -> None:
    """A table when it fits the terminal; else one record per run: its id whole on its own line,
    then state, runbook, start and requester on one line (the state first, always), then the subject."""
    from rich.padding import Padding

    from starter.output import shown
    from starter.tables import natural_width, print_rows

    headers = ("run", "runbook", "state", "started UTC", "requested by", "subject")
    cells = []
    for r in rows:
        state = f"[{_COLOUR.get(r['state'], 'red')}]{shown(r['state'])}[/]"
        started = f"{datetime.fromisoformat(r['started_at']).astimezone(UTC):%Y-%m-%d %H:%M}"
        cells.append((shown(r["run_id"]), shown(r["runbook"]), state, started, shown(r["requested_by"]),
                      shown(r["subject"]), shown(note(r))))
    if any(cell[-1] for cell in cells):
        headers += ("note",)
    else:
        cells = [cell[:-1] for cell in cells]
    if natural_width(headers, cells) <= console.width:
        print_rows(console, headers, cells)
        return
    for run_id, runbook, state, started, who, subject, *noted in cells:
        console.print(console.render_str(f"[bold]{run_id}[/]", highlight=False), soft_wrap=True)
        line = f"{state} · {runbook} · {started}Z" + (f" · [dim]by[/] {who}" if who else "")
        console.print(Padding(console.render_str(line, highlight=False), (0, 0, 0, 2)))
        if subject:
            console.print(Padding(console.render_str(f"[dim]subject[/] {subject}", highlight=False), (0, 0, 0, 2)))
        if noted and noted[0]:
            console.print(Padding(console.render_str(f"[dim]note[/] {noted[0]}", highlight=False), (0, 0, 0, 2)))


def note(row: dict[str, Any]) -> str:
    """Plain text: why a refused rollback request was refused, and the requests refused before the
    row's rollback under its id (folded into its row: one count, who asked, the last reason); and
    the run's changes kept for another run that relies on them ("kept: run R still relies on it")."""
    parts = [f"refused: {row['why']}"] if row.get("why") else []
    if row.get("kept"):  # e.g. rolled back, but a change of it kept: another run relies on it
        parts.append(row["kept"])
    before = row.get("refused_before") or []
    if before:
        who = ", ".join(dict.fromkeys(str(r.get("by")) for r in before))
        count = f"{len(before)} earlier request{'s' if len(before) > 1 else ''} refused ({who})"
        parts.append(f"{count}: {before[-1].get('why')}" if len(before) == 1 else
                     f"{count}; the last: {before[-1].get('why')}")
    return "; ".join(parts)


_COLOUR = {"completed": "green", "awaiting_approval": "yellow", "running": "cyan", "waiting_for_tool": "cyan",
           EXPIRED: "green", "rolled_back": "green", "refused": "yellow"}


@command
async def runs(
    state: Optional[list[str]] = typer.Option(
        None, "--state", help="Only runs in this state (repeatable, or a comma list): "
        + ", ".join(STATES) + "."),
    runbook: Optional[list[str]] = typer.Option(
        None, "--runbook", help="Only this runbook (repeatable, or a comma list): " + ", ".join(RUNBOOKS) + "."),
    since: Optional[str] = typer.Option(None, "--since", help="Only runs started since: 2d, 12h, 2026-10-01, "
                                        "or an ISO-8601 time."),
    limit: int = typer.Option(DEFAULT_LIMIT, "--limit", min=1, max=MAX_LIMIT, help="How many runs at most."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
):
    """List recent runbook runs, newest first: id, runbook, state, when, who asked, subject."""
    from handrail.ops.config import load_settings
    from handrail.ops.temporal import connect
    from starter.trust_cmd import parse_since

    start = parse_since(since, datetime.now(UTC))
    build_query(state, runbook, start)  # a bad filter is a usage error before Temporal is asked
    settings = load_settings()
    rows = await list_runs(await connect(settings), settings, state, runbook, start, limit)
    if as_json:
        print_json(rows)
    elif not rows:
        console.print("No runs match." if state or runbook or since else "No runbook has run here yet.")
    else:
        print_runs(rows)
        console.print(f"[dim]{len(rows)} run(s), newest first; the timeline of one: handrail show RUN[/]",
                      highlight=False)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    app.command("runs")(runs)
