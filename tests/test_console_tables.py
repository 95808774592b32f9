"""Tables for people: ids never cut, every table reads at 80 columns."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from starter.tables import print_rows, print_url

pytestmark = pytest.mark.unit

RUN_ID = "egress-block-203.0.113.7-3c88908c71"


def render(width: int, fn, *args, **kw) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None)
    fn(console, *args, **kw)
    return buffer.getvalue()


def test_a_table_that_fits_is_a_table_with_whole_cells():
    out = render(120, print_rows, ["run", "state"], [[RUN_ID, "completed"]])
    assert RUN_ID in out and "┏" in out


def test_a_table_too_wide_becomes_records_with_the_id_whole():
    headers = ["run", "step", "action", "target", "requested by", "approvals", "why"]
    row = [RUN_ID, "s01-firewall.egress_block", "firewall.egress_block", "203.0.113.7", "alice", "0/1",
           "policy mode is approve, and a much longer reason that has to wrap somewhere on the screen"]
    out = render(80, print_rows, headers, [row])
    assert RUN_ID in out.splitlines()[0]
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "…" not in out and "requested by alice" in out


def test_urls_stay_whole_on_their_own_line():
    url = "http://127.0.0.1:8233/namespaces/default/workflows/" + RUN_ID
    out = render(80, print_url, "Web UI", url)
    assert url in out.splitlines()
