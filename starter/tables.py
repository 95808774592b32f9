"""Tables a person can read on any terminal: a table when it fits, records when it does not.

Rich squeezes a wide table into a narrow terminal by cutting every cell to a few letters
("egress-…"), which hides the one thing a person must copy: the id. Here a table is
printed only when every column fits at its natural width; otherwise each row becomes a
small record: its key (the id) whole on its own line, the short fields on one line, and
each long field on a line of its own, wrapped with an indent.

Cells are Rich markup: a caller puts a value from outside through `starter.output.shown`
(or `rich.markup.escape`). Records are built with the console's `render_str`, never
`Text.from_markup` alone, so a `SafeConsole` shows the controls a cell carries as escapes.
"""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

SHORT_FIELD = 16  # fields up to this wide share one line in a record


def _plain(cell: str) -> str:
    return Text.from_markup(cell).plain


def _width(cell: str) -> int:
    return max((len(line) for line in _plain(cell).splitlines()), default=0)


def natural_width(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    """The width a table needs to show every cell whole (borders and padding included)."""
    total = 1
    for i, header in enumerate(headers):
        widest = max([_width(header)] + [_width(row[i]) for row in rows])
        total += widest + 3
    return total


def print_rows(console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]], *,
               key: int = 0, title: str | None = None) -> None:
    """Print rows as a table when it fits the console, else as one record per row.

    Cells may hold Rich markup; the `key` column (the id) is never cut either way.
    """
    rows = [[str(c) for c in row] for row in rows]
    if natural_width(headers, rows) <= console.width:
        table = Table(*headers, title=title)
        for column in table.columns:
            column.no_wrap = True
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    if title:
        console.print(f"[bold]{title}[/]")
    for row in rows:
        print_record(console, headers, row, key=key)


def print_record(console: Console, headers: Sequence[str], row: Sequence[str], *, key: int = 0) -> None:
    """One row as a record: the key whole on its own line, then its fields."""
    console.print(console.render_str(f"[bold]{row[key]}[/]", highlight=False), soft_wrap=True)
    short, long = [], []
    for i, (header, cell) in enumerate(zip(headers, row, strict=False)):
        if i == key or not _plain(cell).strip():
            continue
        name = " ".join(header.split())
        if _width(cell) <= SHORT_FIELD and "\n" not in cell:
            short.append(f"[dim]{escape(name)}[/] {cell}")
        else:
            long.append((name, cell))
    for line in _pack(short, console.width - 2):
        console.print(Padding(console.render_str(line, highlight=False), (0, 0, 0, 2)))
    for name, cell in long:
        lines = cell.split("\n")
        console.print(Padding(console.render_str(f"[dim]{escape(name)}:[/] {lines[0]}", highlight=False), (0, 0, 0, 2)))
        for line in lines[1:]:
            console.print(Padding(console.render_str(line, highlight=False), (0, 0, 0, 4)))


def print_url(console: Console, label: str, url: str) -> None:
    """A label, then the URL whole on its own line (a terminal may fold it, but never splits it)."""
    console.print(f"{label}:")
    console.print(console.render_str(url, markup=False, highlight=False), soft_wrap=True)


def _pack(fields: list[str], width: int) -> list[str]:
    """Join short fields with " · ", starting a new line rather than splitting a field."""
    lines: list[str] = []
    current, used = "", 0
    for field in fields:
        size = len(_plain(field))
        if current and used + 3 + size > width:
            lines.append(current)
            current, used = "", 0
        current, used = (f"{current} · {field}", used + 3 + size) if current else (field, size)
    if current:
        lines.append(current)
    return lines
