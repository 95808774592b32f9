"""How every CLI command speaks: one JSON document with --json, Rich otherwise.

Errors are one sentence on stderr and an exit status (1 refused or failed, 2 usage),
never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

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
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(exc.code)
