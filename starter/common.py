"""What every `handrail` command module shares: settings, the Temporal client, and how a
run is followed and shown. Command modules import from here; `starter.cli` assembles them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from handrail.ops.config import load_settings
from handrail.shown import YOU
from starter.console_views import change_text
from starter.output import console, print_json, shown
from starter.tables import print_rows, print_url

if TYPE_CHECKING:
    from handrail.gate.models import RunStatus

JSON = typer.Option(False, "--json", help="Print one JSON document and nothing else.")


def _settings():
    return load_settings()


async def _client(settings):
    from handrail.ops.temporal import connect  # Temporal's client: only commands that talk to it pay for it

    return await connect(settings)


# -- the local stack ----------------------------------------------------------------------


def group_of(app: typer.Typer, name: str) -> typer.Typer | None:
    """A command group `starter.cli` registered (`policy`, `audit`, `bench`), for modules adding to it."""
    for group in app.registered_groups:
        if group.name == name and group.typer_instance is not None:
            return group.typer_instance
    return None


def bench_group(app: typer.Typer) -> typer.Typer:
    found = group_of(app, "bench")
    if found is not None:
        return found
    bench = typer.Typer(help="Benchmarks (measure, never assert).", no_args_is_help=True)
    app.add_typer(bench, name="bench")
    return bench


async def _started(client, settings, handle, wait: bool, as_json: bool) -> None:
    if not wait:
        if as_json:
            print_json({"run_id": handle.id})
        else:
            console.print(f"Started run [bold]{shown(handle.id)}[/]")
            console.print(f"Follow it: handrail show {shown(handle.id)}")
            print_url(console, "Web UI", _ui_link(settings, handle.id))
        return
    result = await _follow(client, settings, handle.id, as_json)
    if as_json:
        print_json({"run_id": handle.id, **result.model_dump(mode="json")})
    else:
        _render_status(result, settings)
    if result.state.value not in ("completed",):
        raise typer.Exit(1)


async def _follow(client, settings, run_id: str, as_json: bool) -> RunStatus:
    """Print the run id at once, then one line per step event until the run has an outcome."""
    from handrail.gate.policy import load_policy
    from starter import ops
    from starter.progress import follow

    if not as_json:
        console.print(f"Started run [bold]{shown(run_id)}[/]", soft_wrap=True)
    try:
        policy = load_policy(settings.policy_path)
    except Exception:
        policy = None
    return await follow(lambda: ops.run_status(client, settings, run_id), lambda s: s.state in ops.OUTCOMES,
                        run_id, console, policy, quiet=as_json)


def _ui_link(settings, run_id: str) -> str:
    return f"{settings.ui_url}/namespaces/{settings.namespace}/workflows/{run_id}"


_ENGINE_FACTS = {"compensating"}  # bookkeeping the gate keeps in the summary, not findings


def _ttl_word(step) -> str:
    """A change's TTL in the tense it is in: an expired change no longer "expires"; one undone
    before its TTL ended never will."""
    state = step.state.value if hasattr(step.state, "value") else step.state
    if state == "expired":
        return "expired (TTL ended)"
    if state in ("rolled_back", "compensated"):
        return "undone before its TTL ended"
    return "expires"


def _render_status(status: RunStatus, settings) -> None:
    state = status.state.value if hasattr(status.state, "value") else status.state
    colour = {"completed": "green", "awaiting_approval": "yellow", "running": "cyan"}.get(state, "red")
    expired = ", every timed change since expired" if status.summary.get("all_expired") else ""
    console.print(f"[bold]{shown(status.run_id)}[/]  {shown(status.runbook)}  [{colour}]{state}[/]{expired}")
    started = f"{status.started_at:%Y-%m-%d %H:%M:%S}Z"
    started_by = status.summary.get("started_by")
    by = (f"requested by {shown(status.requested_by)} (the person the change is about; started by "
          f"{shown(started_by)})" if started_by and started_by != status.requested_by
          else f"requested by {shown(status.requested_by)}")
    console.print(f"{by} · subject {shown(status.subject)} · started {started}", highlight=False)
    if status.error:
        console.print(f"[red]{shown(status.error)}[/]")
    if status.live_note:
        console.print(f"[yellow]{shown(status.live_note)}[/]")
    if status.rollback:
        for line in rollback_lines(status.rollback):
            console.print(shown(line), highlight=False)
    for line in refused_lines(status):
        console.print(shown(line), highlight=False)
    headers = ("step", "change", "mode", "state", "guardrails", "decisions", "note")
    rows = []
    for step in status.steps:
        # every cell is markup: a value from outside is `shown` (one line, escaped) before lines are joined
        verdicts = "\n".join(shown(verdict_line(v, step)) for v in step.verdicts) or "pass"
        verdicts += "".join(f"\n{shown(name)} threshold {shown(used)}" for name, used in step.thresholds.items())
        decisions = "\n".join(
            f"{'approve' if d.decision.approve else 'deny'} by {shown(d.decision.approver)}" for d in step.decisions
        )
        note = shown(step.note) + (f"\n{_ttl_word(step)} {step.expires_at:%Y-%m-%d %H:%M}Z" if step.expires_at else "")
        mode = step.mode.value if hasattr(step.mode, "value") else (step.mode or "")
        rows.append((shown(step.step_id), escape(change_text(step.change, settings, status.run_id)), mode,
                     step.state.value, verdicts, decisions, note))
    if rows or state != "refused":  # a refused request ran nothing: no empty table of steps
        print_rows(console, headers, rows)
    for step in status.steps:
        if step.state.value == "awaiting_approval" and step.change_digest:
            _render_digest(step, status.run_id)
        if step.state.value == "awaiting_approval" and step.deciders is not None:
            from starter.console_views import deciders_text

            console.print(f"{shown(step.step_id)} may be decided by: "
                          f"{shown(deciders_text(step.deciders))}", highlight=False)
    for rec in status.rejected_decisions:
        console.print(rejected_line(rec))
    facts = {k: v for k, v in status.summary.items() if k not in _ENGINE_FACTS}
    if isinstance(facts.get("verdicts"), list):
        from starter.phishing_triage import verdict_table

        console.print(verdict_table(facts.pop("verdicts"), status.steps))  # the action as the run left it
    if facts:
        console.print("[bold]What the run found[/]")
        for key, value in facts.items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            table = isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values())
            if len(text) > 300 and table:
                console.print(f"  {shown(key)}:", highlight=False)  # one line per entry (an intel sync's feeds)
                for name, entry in value.items():
                    said = json.dumps({k: v for k, v in entry.items()  # hashes: in --json
                                       if v not in (None, {}, []) and not k.endswith("sha256")}, default=str)
                    console.print(f"    {shown(name)}: {shown(said if len(said) <= 300 else said[:297] + '...')}",
                                  highlight=False)
                continue
            console.print(f"  {shown(key)}: {shown(text if len(text) <= 300 else text[:297] + '...')}",
                          highlight=False)
    print_url(console, "Web UI", _ui_link(settings, status.run_id))


def rejected_line(record) -> str:
    """One rejected decision, as Rich markup. The sender's name is whatever the signal said (a raw
    signal from the Web UI may name nobody, or carry markup), so it is escaped and never blank."""
    sender = record.decision.approver.strip()
    who = shown(sender) if sender else "an unnamed sender"
    return f"[yellow]rejected decision[/] from {who}: {shown(record.why)}"


def verdict_line(verdict, step) -> str:
    """One guardrail verdict of a step. A hold the step has moved past reads as history
    ("held, then approved by bob: ..."): its reason was true when it held, not now."""
    threshold = (f" (threshold {verdict.threshold:g}, {verdict.threshold_source})"
                 if verdict.threshold is not None else "")
    outcome = verdict.outcome.value if hasattr(verdict.outcome, "value") else str(verdict.outcome)
    state = step.state.value if hasattr(step.state, "value") else str(step.state)
    if outcome != "hold" or state in ("awaiting_approval", "checking"):
        return f"{outcome}: {verdict.guardrail} — {verdict.reason}{threshold}"
    said = [d.decision for d in step.decisions if d.accepted]
    yes = [d.approver for d in said if d.approve]
    no = [d.approver for d in said if not d.approve]
    then = (f"approved by {', '.join(yes)}" if yes and state != "denied" else
            f"denied by {', '.join(no)}" if no else state)
    return f"held, then {then}: {verdict.guardrail} — {verdict.reason}{threshold}"


def rollback_lines(note) -> list[str]:
    """Who rolled the run back, when, how it ended and which run did it (`handrail show RUN`)."""
    when = f" at {note.requested_at:%Y-%m-%d %H:%M:%S}Z" if note.requested_at else ""
    ended = f" (ended {note.finished_at:%Y-%m-%d %H:%M:%S}Z)" if note.finished_at else ""
    lines = [f"rollback requested by {note.requested_by}{when}: {note.outcome}{ended}"]
    lines += [f"rollback run: handrail show {run}" for run in note.rollback_ids]
    return lines


def refused_lines(status) -> list[str]:
    """A rollback run's refused requests (`handrail show rollback-RUN`): the earlier ones under its
    id, and, when this one was refused too, what to do next. Plain text (the caller `shown`s it)."""
    lines = [f"refused before: {r.by} asked{_at(r.at)}: {r.why}" for r in status.refused_before]
    state = status.state.value if hasattr(status.state, "value") else status.state
    if state == "refused":
        lines.append(f"nothing was changed; someone the policy allows may ask: handrail rollback {status.subject} "
                     f"--as {YOU}")
    return lines


def _at(when) -> str:
    return f" at {when:%Y-%m-%d %H:%M:%S}Z" if when else ""


def _render_digest(step, run_id: str) -> None:
    """What a signed decision on this step approves: compare it before signing."""
    from handrail.gate.decisions import digest_covers

    covers = digest_covers(step)
    console.print(f"[bold]{shown(step.step_id)}[/] change digest [bold]{shown(step.change_digest)}[/] covers:",
                  highlight=False)
    for name in ("kind", "target", "params", "mode"):  # JSON escapes controls; `shown` escapes markup
        console.print(f"  {name}: {shown(json.dumps(covers[name], default=str))}", highlight=False)
    if "expires_after_s" in covers:
        from starter.console_views import lasting

        console.print(f"  for: {lasting(covers['expires_after_s'])}", highlight=False)
    for v in covers["verdicts"]:
        console.print(f"  verdict: {shown(v['outcome'])} {shown(v['guardrail'])} — {shown(v['reason'])}",
                      highlight=False)
    for name, used in covers["thresholds"].items():
        console.print(f"  threshold: {shown(name)} {shown(used)}", highlight=False)
    console.print(f"  approve it: handrail approve {shown(run_id)} --step {shown(step.step_id)} --as {YOU} "
                  "(signed with your key)", highlight=False, soft_wrap=True)  # whole, to copy as `pending` prints it
