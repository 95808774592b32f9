"""`handrail lab …`: look at and steer the lab (the simulated security estate).

    handrail lab state [--json]      estate hash and per-tool counts (--json: whole document)
    handrail lab reset [--json]      reload the seed (clears calls, idempotency keys, faults)
    handrail lab faults [--json]     list fault rules
    handrail lab faults --route '/firewall/*' --error-rate 0.5 --seed 7
    handrail lab faults --clear
    handrail lab list mailbox|dlp|iam|nac [--all] [--json]   the inputs the runbooks take
    handrail lab list notifications [--json]   what approvers were told (the lab's sink)

With `--json` each command prints exactly one JSON document. Errors are one sentence on
stderr and exit status 1; never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from handrail.ops.config import load_settings
from handrail.ops.credentials import CredentialError

if TYPE_CHECKING:
    from handrail.tools import ToolClients

lab_app = typer.Typer(help="Inspect and steer the lab (the simulated security estate).",
                      no_args_is_help=True, add_completion=False)

T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _clients() -> ToolClients:
    """The lab's admin client: HANDRAIL_LAB_ADMIN_TOKEN only, never the tool token (tests replace this)."""
    from handrail.tools import ToolClients  # the tool clients (httpx, activities): only `lab` commands need them

    return ToolClients.for_admin(load_settings())


def _fail(message: str, code: int = 1) -> None:
    if "--json" in sys.argv[1:]:  # --json promises one JSON document, errors included
        _print_json({"error": message})
    else:
        typer.echo(message, err=True)
    raise typer.Exit(code)


def _run(op: Callable[[ToolClients], Awaitable[T]]) -> T:
    from handrail.tools.errors import ToolError, Unauthorized, Unavailable

    async def main() -> T:
        async with _clients() as tools:
            try:
                return await op(tools)
            except Unavailable as exc:
                if exc.code in ("unreachable", "timeout"):
                    raise _LabDown(tools.base_url) from exc
                raise

    try:
        return asyncio.run(main())
    except _LabDown as exc:
        _fail(f"The lab at {exc.url} is not answering; start it with `handrail up`.")
    except Unauthorized:
        _fail("The lab refused the admin token; check HANDRAIL_LAB_ADMIN_TOKEN.")
    except CredentialError as exc:
        _fail(str(exc))
    except ToolError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")  # pragma: no cover


class _LabDown(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


@lab_app.command()
def state(json_: JsonOpt = False) -> None:
    """Show the estate's hash and how many records each tool holds."""
    st = _run(lambda t: t.lab_state(counts_only=not json_))
    if json_:
        _print_json(st.model_dump())
        return
    console = Console()
    console.print(f"estate hash [bold]{st.hash}[/bold]")
    table = Table("tool", "records", "by collection")
    for tool, colls in st.counts.items():
        detail = ", ".join(f"{c}={n}" for c, n in colls.items())
        table.add_row(tool, str(sum(colls.values())), detail)
    console.print(table)


@lab_app.command()
def reset(json_: JsonOpt = False) -> None:
    """Reload the seed: clears the call log, idempotency keys and faults."""
    digest = _run(lambda t: t.lab_reset())
    if json_:
        _print_json({"ok": True, "hash": digest})
    else:
        Console().print(f"Lab reset; estate hash [bold]{digest}[/bold]")


@lab_app.command()
def faults(
    route: Annotated[str | None, typer.Option(help="Glob over the path (or ^regex).")] = None,
    method: Annotated[str | None, typer.Option(help="Only this HTTP method.")] = None,
    error_rate: Annotated[float, typer.Option(min=0.0, max=1.0,
                                              help="Share of matching requests that fail (0 to 1).")] = 0.0,
    error_status: Annotated[int, typer.Option(help="5xx used for random errors.")] = 503,
    latency_ms: Annotated[int, typer.Option(min=0, help="Delay added to each matching request, in ms.")] = 0,
    status: Annotated[int | None, typer.Option(help="Always answer this 4xx.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the error draw.")] = 0,
    count: Annotated[int | None, typer.Option(help="Affect only this many requests.")] = None,
    after_apply: Annotated[bool, typer.Option(
        "--after-apply", help="Run the request, then answer the error (a lost response).")] = False,
    skip: Annotated[int, typer.Option(min=0, help="Let this many matching requests through first.")] = 0,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every fault rule.")] = False,
    json_: JsonOpt = False,
) -> None:
    """List fault rules, add one (--route ...), or remove all (--clear)."""
    if clear and route:
        typer.echo("Use either --clear or --route, not both.", err=True)
        raise typer.Exit(2)
    if clear:
        n = _run(lambda t: t.lab_clear_faults())
        if json_:
            _print_json({"cleared": n})
        else:
            Console().print(f"Cleared {n} fault rule(s).")
        return
    if route:
        rule = _run(lambda t: t.lab_set_fault(
            route, method=method, error_rate=error_rate, error_status=error_status,
            latency_ms=latency_ms, status=status, seed=seed, count=count, after_apply=after_apply, skip=skip))
        if json_:
            _print_json(rule.model_dump())
        else:
            Console().print(f"Fault rule {rule.id} added for {rule.route}.")
        return
    rules = _run(lambda t: t.lab_faults())
    if json_:
        _print_json({"faults": [r.model_dump() for r in rules]})
        return
    if not rules:
        Console().print("No fault rules.")
        return
    table = Table("id")
    table.add_column("route", no_wrap=True)
    for name in ("method", "error rate", "5xx", "latency ms", "4xx", "seed", "hits"):
        table.add_column(name)
    for r in rules:
        table.add_row(str(r.id), r.route, r.method or "*", str(r.error_rate),
                      str(r.error_status), str(r.latency_ms), str(r.status or "-"), str(r.seed),
                      str(r.hits))
    Console().print(table)


@lab_app.command("list")
def list_(
    source: Annotated[str, typer.Argument(help="What to list: mailbox, dlp, iam, nac, or notifications "
                                            "(what approvers were told).")],
    all_: Annotated[bool, typer.Option("--all", help="nac: every device, not only those the CMDB lacks.")] = False,
    json_: JsonOpt = False,
) -> None:
    """List the inputs runbooks take: mailbox messages, DLP alerts, IAM events, unknown NAC devices."""
    from starter.lab_list import SOURCES, listing
    from starter.tables import print_rows

    if source == "notifications":
        _list_notifications(json_)
        return
    if source not in SOURCES:
        _fail(f"There is no lab list {source!r}; choose one of {', '.join(SOURCES)}.", code=2)
    doc = listing(_run(lambda t: t.lab_state(counts_only=False)).model_dump(), source, all_)
    if json_:
        _print_json(doc)
        return
    from starter.output import console, shown

    if not doc["items"]:
        console.print(f"The lab has no {source} records to list.")
        return
    headers = list(doc["items"][0])  # subjects, file names, device names: the attacker's words
    print_rows(console, headers, [["" if r[h] is None else shown(r[h]) for h in headers] for r in doc["items"]])
    console.print(f"{doc['count']} listed. Start a run: {shown(doc['start_with'].format(id=doc['items'][0]['id']))}",
                  soft_wrap=True, highlight=False)


def _list_notifications(json_: bool) -> None:
    """The lab's notification sink: each notice with its recipients and the approve command (or outcome)."""
    from starter.lab_list import notification_listing
    from starter.output import console, shown
    from starter.tables import print_rows

    doc = notification_listing(_run(lambda t: t.lab_notifications()))
    if json_:
        _print_json({"source": doc["source"], "count": doc["count"], "items": doc["full"]})  # whole records
        return
    if not doc["items"]:
        console.print("Nobody has been notified yet: no step has waited for a human.")
        return
    headers = ["id", "event", "run_id", "step_id", "recipients", "command"]
    print_rows(console, headers, [[shown(r[h] or "") for h in headers] for r in doc["items"]], key=2)
    console.print(f"{doc['count']} notification(s).", highlight=False)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Mount `handrail lab …` (see starter/cli.py COMMAND_MODULES)."""
    app.add_typer(lab_app, name="lab", help="Poke the simulated security estate: state, reset, faults.")
