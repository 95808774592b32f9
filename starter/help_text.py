"""Help that reads as prose: no `<bool>` after a flag.

Typer prints a type after every option, `<bool>` included, which makes `--json <bool>`
look as if it took a value. A flag takes none, so its type column stays empty.
"""

from __future__ import annotations

from typer.core import TyperOption

_display_type_rich = TyperOption.display_type_rich


def _flag_has_no_type(self, ctx):
    if getattr(self, "is_flag", False) and not getattr(self, "count", False):
        return None
    return _display_type_rich(self, ctx)


TyperOption.display_type_rich = _flag_has_no_type
