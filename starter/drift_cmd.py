"""`handrail drift`: where the ledger and the tools disagree (issue 15, item 4).

The CLI talks to Temporal only (tool credentials live with the workers), so it runs the
`Reconcile` workflow in report-only mode and prints what it found. Exit 1 when there is drift.
A change a later one undid or replaced (a rogue device's disconnect, then the analyst's
recommit) is judged by the later one only (`handrail.gate.reconcile.superseded`).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from handrail.ops.config import load_settings
from starter.output import command, console, print_json, shown

if TYPE_CHECKING:
    from handrail.gate.reconcile import ReconcileReport


async def drift_report(client, task_queue: str, limit: int = 500) -> ReconcileReport:
    from handrail.gate.reconcile import ReconcileTrigger
    from workflows.reconcile import Reconcile

    return await client.execute_workflow(
        Reconcile.run, ReconcileTrigger(revert_expired=False, drift_limit=limit),
        id=f"drift-{uuid.uuid4().hex[:12]}", task_queue=task_queue,
    )


@command
async def drift(
    limit: int = typer.Option(500, "--limit", min=1, max=100_000,
                              help="How many recent (kind, target) pairs to check."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
):
    """Compare the ledger with what the tools hold: live changes gone, reverted ones still held, unsettled ones."""
    from handrail.ops.temporal import connect

    settings = load_settings()
    report = await drift_report(await connect(settings), settings.task_queue, limit)
    if as_json:
        print_json({"drift": [d.model_dump(mode="json") for d in report.drift]})
    elif not report.drift:
        console.print("No drift: the tools hold exactly what the ledger says is live.")
    else:
        table = Table("change", "run", "ledger", "tool holds", "detail")
        for item in report.drift:
            holds = "?" if item.tool_holds is None else ("yes" if item.tool_holds else "no")
            table.add_row(shown(item.change), shown(item.run_id), shown(item.ledger), holds, shown(item.detail))
        console.print(table)
    if report.drift:
        raise typer.Exit(1)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    app.command("drift")(drift)
