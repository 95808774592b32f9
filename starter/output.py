"""How every CLI command speaks: one JSON document with --json, Rich otherwise.

Errors are one sentence on stderr and an exit status (1 refused or failed, 2 usage),
never a traceback.

Much of what the CLI prints was written by an attacker (a phishing subject, a target, a
guardrail reason quoting one). Two rules keep it from acting on the approver's terminal:

* every value interpolated into a Rich string goes through :func:`shown` (one line, markup
  escaped), so ``[link=file:///etc]x[/link]`` or ``[red]APPROVED[/]`` prints as written;
* the consoles are :class:`SafeConsole`: whatever string reaches Rich has its control and
  bidi characters shown as escapes (``\\x1b``), so a value that missed :func:`shown` still
  cannot clear the screen, hide a hyperlink or reverse a file name.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import pydantic
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from handrail.shown import lines, one_line


class SafeConsole(Console):
    """A Rich console on which no printed string can carry a terminal control sequence.

    Every ``str`` Rich renders (``print`` arguments, table cells) passes `render_str`; Rich
    itself strips only BEL, BS, VT, FF and CR, so ESC, OSC 8 links and bidi overrides would
    reach the terminal. Line breaks and tabs stay: the CLI builds multi-line cells itself.
    """

    def render_str(self, text: str, **kwargs) -> Text:
        return super().render_str(lines(text), **kwargs)


def shown(value: object) -> str:
    """A value from outside (a subject, a target, a reason) for a Rich markup string: one line,
    controls shown as escapes, markup escaped so that it prints instead of styling or linking."""
    return escape(one_line(value))


console = SafeConsole()
err_console = SafeConsole(stderr=True)

REFUSED = 1
USAGE = 2


class CliError(Exception):
    def __init__(self, message: str, code: int = REFUSED):
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = REFUSED) -> NoReturn:
    raise CliError(message, code)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, default=str) + "\n")


def emit_error(exc: CliError, json_mode: bool) -> NoReturn:
    if json_mode:
        print_json({"error": str(exc)})
    else:
        err_console.print(f"[bold red]error:[/] {escape(lines(exc))}", highlight=False)
    raise typer.Exit(exc.code)


def _is_domain_error(exc: BaseException) -> bool:
    """Errors raised on purpose by Handrail's own modules already say what is wrong."""
    return type(exc).__module__.startswith("handrail.")


def crash_log(exc: BaseException) -> Path:
    from handrail.ops.config import load_settings

    path = load_settings().home / "logs" / "cli-errors.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"--- {datetime.now(timezone.utc).isoformat()}\n")
            handle.write("".join(traceback.format_exception(exc)))
    except OSError:
        pass
    return path


def command(target):
    """Run a command body (sync or async) so that every failure is one sentence and an exit status.

    Refusals (`CliError`) and Handrail's own errors (policy, schedules, trust, Temporal not
    answering) are printed as they are; anything else is a bug or an outage: one sentence
    here, the traceback in HANDRAIL_HOME/logs/cli-errors.log.
    """

    @functools.wraps(target)
    def wrapper(*args, **kwargs):
        json_mode = bool(kwargs.get("as_json"))
        try:
            result = target(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
            return result
        except CliError as exc:
            emit_error(exc, json_mode)
        except (typer.Exit, typer.Abort, SystemExit, KeyboardInterrupt):
            raise
        except pydantic.ValidationError as exc:
            if exc.title.endswith("Trigger"):  # a trigger field over its limits: the user's input
                from handrail.gate.limits import explain

                emit_error(CliError(explain(exc), USAGE), json_mode)
            log = crash_log(exc)
            emit_error(CliError(f"Handrail failed unexpectedly (invalid {exc.title}); details in {log}."), json_mode)
        except sqlite3.Error as exc:
            emit_error(CliError(f"The ledger could not be read: {exc}."), json_mode)
        except Exception as exc:
            if _is_domain_error(exc):
                emit_error(CliError(str(exc)), json_mode)
            log = crash_log(exc)
            emit_error(CliError(f"Handrail failed unexpectedly ({type(exc).__name__}: {exc}); details in {log}."),
                       json_mode)

    return wrapper

