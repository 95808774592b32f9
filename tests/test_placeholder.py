"""One spelling for "your own name" in a command a person copies: `--as YOU`, in the CLI's output,
the approvers' notices, the runbooks' alerts and the README (names stay where they are examples)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from handrail.gate.models import Change
from handrail.notify.message import Notice, approve_command, deny_command, render_text
from handrail.shown import YOU

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
# any other placeholder an `--as` has been given: <your name>, <analyst>, NAME, …, ...
OTHER = re.compile(r"--as (<[^>\n]*>|NAME\b|…|\.\.\.)")


def test_the_placeholder_is_you():
    assert YOU == "YOU"


def test_a_notice_to_anyone_allowed_says_as_you_and_a_named_approver_keeps_their_name():
    notice = Notice(event="waiting", run_id="egress-block-5e1f", step_id="s01-firewall.egress_block",
                    runbook="egress-block", requested_by="alice", why="policy mode is approve",
                    change=Change(kind="firewall.egress_block", target="203.0.113.7"),
                    deadline=datetime(2026, 11, 30, 13, 0, tzinfo=timezone.utc), approvers=[])
    text = render_text(notice)
    assert "approve: handrail approve egress-block-5e1f --step s01-firewall.egress_block --as YOU" in text
    assert deny_command(notice).endswith('--as YOU --reason "<why>"') and "your name" not in text
    assert approve_command(notice, "bob").endswith("--as bob")


def _sources():
    for folder in ("starter", "handrail", "workflows", "activities", "lab"):
        yield from sorted((ROOT / folder).rglob("*.py"))
    yield from (ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "policy.toml")


def test_no_output_notice_or_document_spells_the_placeholder_another_way():
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in _sources()
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if OTHER.search(line)]
    assert not found, "\n".join(found)


def test_the_readmes_command_synopses_say_as_you():
    """A synopsis (RUN, KIND MODE: placeholders) takes `--as YOU`; a worked example keeps its person
    (bob approves alice's run in "First approval without the demo", `--as bob` is only a check)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for synopsis in ("handrail approve RUN [--as YOU] [--step S] [--reason T]", "handrail rollback RUN --as YOU ",
                     "handrail trust set KIND MODE --as YOU ", "handrail review [--mark --as YOU]",
                     "handrail approve RUN [--key PATH] [--as YOU] [--reason T]", "`handrail rollback RUN --as YOU`",
                     "`handrail approve rollback-RUN --as YOU`", "`handrail approve RUN --as YOU` waits until",
                     "`handrail approve RUN --as YOU` re-grants"):
        assert synopsis in readme, synopsis
