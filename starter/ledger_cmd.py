"""`handrail ledger migrate --to postgresql://…`: move an installation's ledger to PostgreSQL.

The copy and its checks live in `handrail.ops.ledger_migrate`; this is the command around
them. Stop the workers first (a worker writing to the target makes the migration stop, it
never forks the chain), run it, then start the workers with HANDRAIL_LEDGER_URL set to the
same URL. Running it again is harmless: a ledger already copied is left as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from starter.output import USAGE, command, console, fail, print_json

ledger_app = typer.Typer(help="Move the ledger between backends.", no_args_is_help=True)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from starter import common

    app.add_typer(ledger_app, name="ledger")

    @ledger_app.command("migrate")
    @command
    def ledger_migrate(
        to: str = typer.Option(..., "--to", help="The PostgreSQL ledger to copy into: postgresql://user@host/db."),
        source: Optional[Path] = typer.Option(None, "--from", help="The SQLite ledger file (default: the one "
                                              "HANDRAIL_LEDGER_URL or HANDRAIL_HOME names)."),
        as_json: bool = common.JSON,
    ):
        """Copy the SQLite ledger (audit chain with its hashes, changes, reverts) and the intel store
        into PostgreSQL, verifying the chain before and after. Idempotent; refuses a different chain."""
        from handrail.ops.ledger_migrate import MigrationRefused, migrate

        if not to.startswith(("postgresql://", "postgres://")):
            fail("--to must be a postgresql:// URL.", USAGE)
        from handrail.ops.stack import worker_writing

        settings = common._settings()
        path = (source.expanduser().resolve() if source is not None else settings.ledger_path)
        live = worker_writing(settings)
        if live is not None and live[1] != "postgresql" and (live[1] is None or Path(live[1]) == path):
            fail(f"The worker `handrail up` started (pid {live[0]}) {'still writes' if live[1] else 'may still write'} "
                 f"to {path}: what it records after the copy would never reach PostgreSQL. Stop it with "
                 "`handrail down`, then migrate.")
        try:
            report = migrate(path, to, settings.home)
        except MigrationRefused as exc:
            fail(str(exc))
        doc = report.as_dict()
        if as_json:
            print_json(doc)
            return
        if report.already_migrated and not report.audit_copied:
            console.print(f"[green]Already migrated[/]: {report.target} holds this ledger's {report.audit_rows} audit "
                          f"rows (head {report.head[:16]}…); nothing to copy.", highlight=False)
        else:
            console.print(f"[green]Migrated[/] {path} to {report.target}: {report.audit_copied} audit rows, "
                          f"{report.changes_copied} changes, {report.reverts_copied} reverts copied.", highlight=False)
        blobs = sum(report.intel_blobs_copied.values())
        console.print(f"Intel store: {blobs} blobs copied; sync state rows copied: "
                      f"{sum(report.intel_state_copied.values())}.", highlight=False)
        console.print(f"Verified: the SQLite chain before, the PostgreSQL chain after ({report.target_rows} rows, "
                      f"head {report.head[:16]}…), {report.checkpoints} signed checkpoint(s), and every change "
                      "and revert record.", highlight=False)
        console.print("Next: start the workers with HANDRAIL_LEDGER_URL set to the same URL.")
