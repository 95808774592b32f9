"""`handrail phishing triage FILE.eml ...`: what a run would do with each message, changing nothing.
`handrail phishing evidence RUN|REF`: the full parse a run stored as evidence.

For each message: the verdict per link domain with its evidence and the action a run would
take (sinkhole / block_url, its pages on the web proxy / hold / report), the bare-IP links
(egress-block candidates, held by default) and the link wrappers that were looked through.
The same code as the run's parse activity (`handrail.runbooks.phishing.triage`) with the
same policy and top-sites list, so the dry run and the run agree. Nothing is fetched, resolved, posted or changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from starter.output import USAGE, command, console, fail, print_json, shown

if TYPE_CHECKING:
    from handrail.runbooks.phishing.triage import JudgeContext

MAX_FILE = 8 * 1024 * 1024


def _shared_intel(settings) -> Any:
    """The intel sync's state and store when they live in PostgreSQL (None: read the files
    under HANDRAIL_HOME). Unreachable means no intel evidence, as for a home with no sync."""
    if not settings.ledger_on_postgres:
        return None
    from types import SimpleNamespace

    from handrail.intel.backends import open_state, open_store

    try:
        store = open_store(settings)
        return SimpleNamespace(store=store, state=open_state(settings, store))
    except Exception:
        return None


# What a step's final state means for the domain (or page) it was about, by change kind.
_DONE = {"dns.sinkhole": "sinkholed", "proxy.block": "blocked"}
_AFTER = {"applied": "{done}", "unchanged": "already {done}", "expired": "{done}, since expired",
          "rolled_back": "{done}, since rolled back", "compensated": "{done}, then undone (compensation)",
          "kept": "{done}, undone for this run; kept, as another run relies on it",
          "awaiting_approval": "hold: waiting for approval", "denied": "denied", "failed": "failed",
          "compensation_failed": "{done}; undoing it failed"}


def step_outcome(step) -> str:
    """What a run's step did to its target, in the verdict table's words ("sinkholed", "denied")."""
    state = step.state.value if hasattr(step.state, "value") else str(step.state)
    return _AFTER.get(state, state).format(done=_DONE.get(step.change.kind, "applied"))


def _final(action: str, steps: list) -> str:
    """The row's action as the run left it; the verdict's own action stays visible when it differs."""
    if not steps:
        return action
    done = "; ".join(dict.fromkeys(step_outcome(s) for s in steps))
    return done if action == "sinkhole" and done == "sinkholed" else f"{done} (verdict: {action})"


def verdict_table(rows: list[dict[str, Any]], steps: list | None = None) -> Table:
    """The run's (or the dry run's) table: domain, verdict, evidence, action.

    With the run's `steps`, the action is what the run finally did (a held sinkhole that was
    approved reads `sinkholed (verdict: hold)`, a refused one `denied (verdict: hold)`), each
    block_url page with its own outcome; the dry run has no steps and shows the plan."""
    sinkholes: dict[str, list] = {}
    pages: dict[str, list] = {}
    for step in steps or []:
        if step.change.kind == "dns.sinkhole":
            sinkholes.setdefault(step.change.target, []).append(step)
        elif step.change.kind == "proxy.block":
            pages.setdefault(step.change.target, []).append(step)
    table = Table(title="Link domains")
    # a domain, its evidence and block_url's pages are folded at 80 columns, never cut to "micr0soft-365-….ex…"
    table.add_column("domain", overflow="fold")
    table.add_column("verdict")
    table.add_column("evidence", overflow="fold")
    table.add_column("action", overflow="fold")
    for row in rows:
        # every cell is the message's own words (a domain, its evidence, a page URL): one line each, escaped
        verdict = shown(f"{row.get('verdict', '')} ({row.get('score', 0)})")
        evidence = "\n".join(map(shown, row.get("evidence", [])))
        action = str(row.get("action", ""))
        if action in ("sinkhole", "hold"):
            action = _final(action, sinkholes.get(str(row.get("domain", "")), []))
        outcomes = [shown(page + (f" ({'; '.join(step_outcome(s) for s in pages[page])})" if page in pages else ""))
                    for page in row.get("pages", [])]
        table.add_row(shown(row.get("domain", "")), verdict, evidence,  # block_url: pages
                      "\n".join([shown(action), *outcomes]))
    return table


def triage_file(path: Path, context: JudgeContext) -> dict[str, Any]:
    """One file's dry run as a JSON-ready document."""
    from handrail.runbooks.phishing.mail import MalformedMessage
    from handrail.runbooks.phishing.triage import triage

    try:
        if path.stat().st_size > MAX_FILE:
            return {"file": str(path), "rejected": f"larger than {MAX_FILE // (1024 * 1024)} MB"}
        raw = path.read_bytes()
    except OSError as exc:
        return {"file": str(path), "rejected": f"cannot be read ({exc.strerror or exc})"}
    try:
        result = triage(raw, context)
    except MalformedMessage as exc:
        return {"file": str(path), "rejected": f"the message is malformed: {exc.reason}"}
    mail, judgement = result.mail, result.judgement
    return {
        "file": str(path),
        "message_id": mail.message_id,
        "sender": mail.sender,
        "subject": mail.subject,
        "ranking_problem": judgement.ranking_problem,
        "wrappers": judgement.wrappers,
        "domains": [{"domain": v.domain, "verdict": v.confidence, "score": v.score, "action": v.action,
                     "rank": v.rank, "target": v.target, "url": v.url, "evidence": v.evidence, "pages": v.pages}
                    for v in judgement.domains],
        "ips": [{"ip": c.ip, "action": "hold", "change": "firewall.egress_block", "url": c.url,
                 "evidence": c.evidence} for c in judgement.ips],
    }


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    phishing_app = typer.Typer(help="Phishing tools that change nothing.", no_args_is_help=True)
    app.add_typer(phishing_app, name="phishing")

    @phishing_app.command("triage")
    @command
    def triage_cmd(
        files: list[Path] = typer.Argument(..., help="One or more .eml files."),
        show_all: bool = typer.Option(False, "--all", help="Also list the domains that are only reported."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    ):
        """Dry run: what a phishing run would sinkhole, block, hold or report for each message, and why."""
        from handrail.gate.policy import PolicyError
        from handrail.ops.config import load_settings
        from handrail.runbooks.phishing.triage import load_context  # the lookalike tables: only when triaging

        missing = [str(f) for f in files if not Path(f).is_file()]
        if missing:
            fail(f"Not a file: {', '.join(missing[:3])}.", USAGE)
        settings = load_settings()
        try:
            context = load_context(settings.policy_path, settings.home, _shared_intel(settings))
        except PolicyError as exc:
            fail(str(exc))
        results = [triage_file(Path(f), context) for f in files]
        if as_json:
            print_json({"dry_run": True, "messages": results})
            return
        for result in results:
            console.print(f"[bold]{shown(result['file'])}[/]", highlight=False)
            if "rejected" in result:
                console.print(f"  [red]rejected:[/] {shown(result['rejected'])}", highlight=False)
                continue
            console.print(f"  from {shown(result['sender'])}: {shown(result['subject'])}", highlight=False)
            if result["ranking_problem"]:
                console.print(f"  [yellow]{shown(result['ranking_problem'])}: every sinkhole would wait for a human[/]",
                              highlight=False)
            rows = [r for r in result["domains"] if show_all or r["action"] != "report"]
            if rows:
                console.print(verdict_table(rows))
            hidden = len(result["domains"]) - len(rows)
            if hidden:
                console.print(f"  {hidden} more domain(s) only reported (--all shows them)")
            for ip in result["ips"]:
                console.print(f"  egress block {shown(ip['ip'])} (held): {shown('; '.join(ip['evidence']))}",
                              highlight=False)
            if result["wrappers"]:
                console.print(f"  looked through wrappers: {shown(', '.join(result['wrappers']))}", highlight=False)
        console.print("Dry run: nothing was changed.")

    @phishing_app.command("evidence")
    @command
    def evidence_cmd(
        run_or_ref: str = typer.Argument(..., help="A phishing run id, or a parse reference (store:json:SHA256)."),
        as_json: bool = typer.Option(False, "--json", help="Print the stored document and nothing else."),
    ):
        """The full parse of a run's message (every URL, domain, attachment and verdict), from the
        store every worker shares; the run's status and incident name it as `parse_ref`."""
        from handrail.intel.backends import open_store
        from handrail.ops.config import load_settings
        from handrail.runbooks.phishing.evidence import EvidenceMissing, load_evidence

        settings = load_settings()
        ref = run_or_ref if ":" in run_or_ref or run_or_ref.startswith("/") else _parse_ref_of_run(settings, run_or_ref)
        try:
            document = load_evidence(open_store(settings), ref)
        except EvidenceMissing as exc:
            fail(f"{exc}.")
        if as_json:
            print_json(document)
            return
        console.print(f"[bold]{shown(ref)}[/]", highlight=False)
        console.print(f"  from {shown(document.get('sender', ''))}: {shown(document.get('subject', ''))}",
                      highlight=False)
        console.print(f"  {len(document.get('urls') or [])} URL(s), {len(document.get('domains') or [])} domain(s), "
                      f"{len(document.get('attachments') or [])} attachment(s)", highlight=False)
        rows = [{"domain": d.get("domain", ""), "verdict": d.get("confidence", ""), "score": d.get("score", 0),
                 "evidence": d.get("evidence") or [], "action": d.get("action", "")}
                for d in (document.get("verdicts") or {}).get("domains") or [] if isinstance(d, dict)]
        if rows:
            console.print(verdict_table(rows))
        console.print("--json prints the whole stored document.")


def _parse_ref_of_run(settings, run_id: str) -> str:
    """The parse reference a run recorded in its `phishing.parsed` audit event."""
    from handrail.gate.ledger import open_ledger

    ledger = open_ledger(settings)
    try:
        refs = [row.get("data", {}).get("parse_ref") for row in ledger.audit_rows(run_id)
                if row.get("event") == "phishing.parsed"]
    finally:
        ledger.close()
    refs = [r for r in refs if r]
    if not refs:
        fail(f"Run {run_id} recorded no parsed message in the audit (is it a phishing run?).")
    return refs[-1]
