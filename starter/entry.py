"""Running the CLI so that --json always means one JSON document, usage errors included.

Click prints usage errors as text (exit 2) before any command runs, so a script that
asked for --json got a panel it cannot parse. With --json anywhere on the command line
the app runs in click's non-standalone mode and a usage error becomes
`{"error": ..., "usage": ...}` on stdout, still with exit status 2.
"""

from __future__ import annotations

import sys

import typer

from starter.output import print_json


def wants_json(argv: list[str]) -> bool:
    return "--json" in argv[1:]


def run(app) -> int:
    """Run the typer app; return the exit status. An unreachable ledger is one sentence, exit 1."""
    from handrail.gate.ledger_core import LedgerUnavailable

    try:
        return _run(app)
    except LedgerUnavailable as exc:
        if wants_json(sys.argv):
            print_json({"error": _sentence(str(exc))})
        else:
            sys.stderr.write(_sentence(str(exc)) + "\n")
        return 1


def _run(app) -> int:
    if not wants_json(sys.argv):
        app()
        return 0
    try:
        result = app(standalone_mode=False)
    except typer.TyperException as exc:  # typer's own click: UsageError, BadParameter, NoSuchOption...
        ctx = getattr(exc, "ctx", None)
        doc = {"error": _sentence(exc.format_message())}
        if ctx is not None:
            doc["usage"] = ctx.get_usage()
        print_json(doc)
        return exc.exit_code
    except typer.Abort:
        return 1
    return result if isinstance(result, int) else 0


def _sentence(message: str) -> str:
    message = message.strip()
    return message if message.endswith(".") else message + "."
