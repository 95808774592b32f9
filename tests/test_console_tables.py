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


# -- `handrail show` of a phishing run: the verdict table and the steps say what finally happened --
def _step(n: int, kind: str, target: str, state: str, decided: bool | None = None):
    from datetime import datetime, timezone

    from handrail.gate.models import (
        Change,
        Decision,
        DecisionRecord,
        Outcome,
        StepRecord,
        StepState,
        Verdict,
    )

    held = Verdict(guardrail="popular_domain", outcome=Outcome.HOLD, reason="the top-sites list cannot be read")
    decisions = [] if decided is None else [DecisionRecord(
        decision=Decision(approver="bob", approve=decided), accepted=True, why="ok",
        at=datetime(2025, 3, 1, tzinfo=timezone.utc))]
    return StepRecord(step_id=f"s0{n}-{kind}", change=Change(kind=kind, target=target), state=StepState(state),
                      verdicts=[held], decisions=decisions)


def test_the_verdict_table_shows_what_the_run_finally_did_and_the_verdict_as_history():
    from starter.phishing_triage import verdict_table

    rows = [{"domain": "held.example", "verdict": "medium", "score": 2, "action": "hold"},
            {"domain": "refused.example", "verdict": "medium", "score": 2, "action": "hold"},
            {"domain": "sure.example", "verdict": "high", "score": 5, "action": "sinkhole"},
            {"domain": "waits.example", "verdict": "medium", "score": 2, "action": "hold"},
            {"domain": "platform.example", "verdict": "high", "score": 4, "action": "block_url",
             "pages": ["https://platform.example/p/1"]},
            {"domain": "noise.example", "verdict": "low", "score": 0, "action": "report"}]
    steps = [_step(1, "dns.sinkhole", "held.example", "applied", decided=True),
             _step(2, "dns.sinkhole", "refused.example", "denied", decided=False),
             _step(3, "dns.sinkhole", "sure.example", "applied"),
             _step(4, "dns.sinkhole", "waits.example", "awaiting_approval"),
             _step(5, "proxy.block", "https://platform.example/p/1", "rolled_back")]
    out = render(200, lambda console: console.print(verdict_table(rows, steps)))
    line = {row["domain"]: next(x for x in out.splitlines() if row["domain"] in x) for row in rows}
    assert "sinkholed (verdict: hold)" in line["held.example"]
    assert "denied (verdict: hold)" in line["refused.example"]
    assert line["sure.example"].rstrip(" │").endswith("sinkholed")
    assert "hold: waiting for approval (verdict: hold)" in line["waits.example"]
    assert "https://platform.example/p/1 (blocked, since rolled back)" in out
    assert line["noise.example"].rstrip(" │").endswith("report")
    # the dry run (no steps) shows the plan as before
    planned = render(200, lambda console: console.print(verdict_table(rows)))
    assert "sinkholed" not in planned and "│ hold" in planned


def test_a_hold_the_step_moved_past_reads_as_history():
    from starter.common import verdict_line

    applied = _step(1, "dns.sinkhole", "held.example", "applied", decided=True)
    assert verdict_line(applied.verdicts[0], applied) == (
        "held, then approved by bob: popular_domain — the top-sites list cannot be read")
    denied = _step(2, "dns.sinkhole", "refused.example", "denied", decided=False)
    assert verdict_line(denied.verdicts[0], denied).startswith("held, then denied by bob: popular_domain")
    waiting = _step(3, "dns.sinkhole", "waits.example", "awaiting_approval")
    assert verdict_line(waiting.verdicts[0], waiting) == "hold: popular_domain — the top-sites list cannot be read"
