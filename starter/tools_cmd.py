"""`handrail tools check [--tool NAME] [--json]`: is each configured tool backend usable?

Reads HANDRAIL_TOOLS (see the README's "Real tool backends" section); tools it does not
name are the lab. Exit 0 when every checked tool answered and accepted the credentials,
1 otherwise, 2 for a bad option.
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from handrail.ops.config import load_settings
from starter.output import USAGE, command, console, fail, print_json, shown

tools_app = typer.Typer(help="Check the configured tool backends (HANDRAIL_TOOLS).", no_args_is_help=True)


@tools_app.callback()
def tools_group() -> None:
    """The tools Handrail drives: the lab, or the real backends HANDRAIL_TOOLS names."""


@tools_app.command("check")
@command
async def tools_check(
    tool: Optional[list[str]] = typer.Option(None, "--tool", help="Only this tool (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document."),
):
    """Connect to each tool with its configured backend: reachable, authenticated, what it read."""
    from handrail.ops.tools_config import TOOL_NAMES, ToolsConfigError, load_tools_config
    from handrail.tools import ToolClients
    from handrail.tools.check import check_tools

    unknown = [t for t in tool or [] if t not in TOOL_NAMES]
    if unknown:
        fail(f"--tool {unknown[0]} is not one of {', '.join(TOOL_NAMES)}.", USAGE)
    settings = load_settings()
    try:
        cfg = load_tools_config(settings.tools_path)
        clients = ToolClients.from_settings(settings, timeout=5.0)
    except (ToolsConfigError, ValueError) as exc:
        fail(str(exc))
    async with clients:
        results = await check_tools(clients, cfg, tool or None)
    ok = all(r.ok for r in results)
    if as_json:
        print_json({"ok": ok, "tools_file": str(settings.tools_path) if settings.tools_path else None,
                    "tools": [r.model_dump() for r in results]})
    else:
        table = Table(title=f"Tool backends ({settings.tools_path or 'lab for every tool'})")
        for col in ("tool", "backend", "reachable", "authenticated", "read / error"):
            table.add_column(col)
        for r in results:
            table.add_row(r.tool, r.backend, "yes" if r.reachable else "NO", "yes" if r.authenticated else "NO",
                          shown(r.read) if r.error is None else f"[red]{shown(r.error)}[/]")  # a server's words
        console.print(table)
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    app.add_typer(tools_app, name="tools")
