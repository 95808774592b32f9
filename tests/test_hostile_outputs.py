"""Attacker-written text on every output channel: the CLI, the approvers' notices, SIEM alerts,
the HTML report and case files. It must print as written and never act there: no Rich markup
obeyed, no terminal escape, no forged line, no disguised link (`handrail.shown`)."""

from __future__ import annotations

import io
import re
import types
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handrail.gate.models import (
    Change,
    Decision,
    DecisionRecord,
    Outcome,
    RunState,
    RunStatus,
    StepRecord,
    StepState,
    Verdict,
)
from handrail.shown import inert_links, lines, one_line

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
# Rich markup, a clear-screen, an OSC 8 hyperlink hiding its address, a bidi override ("exe.pdf")
HOSTILE = ("[link=file:///etc/passwd]Invoice[/link] [red]APPROVED[/] \x1b[2J"
           "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\ \u202efdp.exe")
FORGED = "203.0.113.9\ns99-fake approved by bob"  # a line break that would make a row of its own
_SGR = re.compile(r"\x1b\[[0-9;]*m")  # Rich's own colours


def _terminal():
    from starter.output import SafeConsole

    return SafeConsole(file=io.StringIO(), force_terminal=True, color_system="standard", width=400)


def _printed(console) -> str:
    """What reached the terminal, Rich's colours removed: any ESC left came from the data."""
    return _SGR.sub("", console.file.getvalue())


def _assert_inert(out: str) -> None:
    assert "\x1b" not in out and "\u202e" not in out, repr(out)  # no escape sequence, no bidi override
    assert "[red]APPROVED[/]" in out and "[link=file:///etc/passwd]" in out  # markup printed, not obeyed
    assert "\\x1b[2J" in out and "\\u202efdp.exe" in out  # the controls are shown, not dropped


# -- the shared rule ---------------------------------------------------------------------------
def test_controls_bidi_and_line_breaks_are_shown_as_escapes():
    assert one_line("a\x1b[2Jb\r\nc\u202ed\x00\u200b\x85\U000e0041") == (
        "a\\x1b[2Jb\\r\\nc\\u202ed\\x00\\u200b\\x85\\U000e0041")
    assert one_line("paypa1.example — ok, ünïcode 日本") == "paypa1.example — ok, ünïcode 日本"
    assert lines("one\r\ntwo\rthree\n\tfour\x1b") == "one\ntwo\nthree\n\tfour\\x1b"
    assert inert_links("see https://evil.example/approve and HXXP://x") == ("see https[:]//evil.example/approve "
                                                                             "and HXXP[:]//x")


def test_the_console_shows_escapes_a_caller_forgot_to_escape():
    from rich.table import Table

    console = _terminal()
    console.print(f"plain {HOSTILE}", markup=False)
    table = Table("cell")
    table.add_row("x\x1b]8;;https://evil.example/\x1b\\y")
    console.print(table)
    out = _printed(console)
    assert "\x1b" not in out and "\\x1b]8;;https://evil.example/" in out


# -- the CLI -----------------------------------------------------------------------------------
def test_phishing_triage_prints_a_hostile_subject_as_written(tmp_path):
    from starter.cli import app

    eml = tmp_path / "hostile.eml"
    eml.write_bytes(b"From: IT Desk <it@paypa1-secure.example>\r\n"
                    b"Subject: =?utf-8?q?[link=3Dfile:///etc/passwd]Invoice[/link]_[red]APPROVED[/]_=1B[2J"
                    b"=1B]8;;https://evil.example/=1B=5Cclick=1B]8;;=1B=5C_=E2=80=AEfdp.exe?=\r\n"
                    b"Message-ID: <abc@paypa1-secure.example>\r\nTo: v@corp.example\r\n"
                    b"Content-Type: text/plain\r\n\r\nLogin http://paypa1-secure.example/login now\r\n")
    (tmp_path / "policy.toml").write_text((ROOT / "policy.toml").read_text())
    env = {"HANDRAIL_POLICY": str(tmp_path / "policy.toml"), "HANDRAIL_HOME": str(tmp_path / "home"),
           "COLUMNS": "400"}
    result = CliRunner().invoke(app, ["phishing", "triage", str(eml)], env=env)
    assert result.exit_code == 0, result.output
    _assert_inert(result.output)


def _hostile_status() -> RunStatus:
    step = StepRecord(
        step_id="s01-dns.sinkhole", state=StepState.AWAITING_APPROVAL, change_digest="sha256:0",
        change=Change(kind="dns.sinkhole", target=FORGED, params={"comment": HOSTILE}),
        verdicts=[Verdict(guardrail="popular_domain", outcome=Outcome.HOLD, reason=HOSTILE)],
        note=HOSTILE,
        decisions=[DecisionRecord(decision=Decision(id="d", approver="[green]boss[/]", approve=True),
                                  accepted=False, at=T0, why=HOSTILE)],
    )
    return RunStatus(run_id="phishing-1", runbook="phishing", state=RunState.AWAITING_APPROVAL,
                     requested_by="mailbox", subject=HOSTILE, started_at=T0, steps=[step], error=HOSTILE,
                     rejected_decisions=step.decisions, summary={"subject": HOSTILE, "sender": "x@evil.example"})


def test_show_prints_every_hostile_field_of_a_run_as_written(monkeypatch):
    from starter import common

    console = _terminal()
    monkeypatch.setattr(common, "console", console)
    monkeypatch.setattr(common, "print_url", lambda *a, **k: None)
    common._render_status(_hostile_status(), settings=types.SimpleNamespace(ui_url="http://ui", namespace="default"))
    out = _printed(console)
    _assert_inert(out)
    assert "203.0.113.9\\ns99-fake approved by bob" in out  # the forged row stays inside its cell
    assert "\\[green]boss" not in out and "[green]boss[/]" in out
    assert not any(line.startswith("s99-fake") for line in out.splitlines())


def test_pending_runs_and_review_print_hostile_cells_as_written(monkeypatch):
    from starter import runs_cmd
    from starter.console_views import print_pending

    console = _terminal()
    print_pending(console, [{"run_id": "phishing-1", "step": "s01", "requested_by": "mailbox", "approvals": "0/1",
                             "change": Change(kind="dns.sinkhole", target=FORGED).model_dump(),
                             "action": "dns.sinkhole", "target": FORGED, "why": HOSTILE}])
    monkeypatch.setattr(runs_cmd, "console", console)
    for width in (400, 60):  # the table, and the records a narrow terminal gets
        console.width = width
        runs_cmd.print_runs([{"run_id": "phishing-1", "runbook": "phishing", "state": "completed",
                              "started_at": T0.isoformat(), "requested_by": "mailbox", "subject": HOSTILE}])
    out = _printed(console)
    _assert_inert(out)
    assert "203.0.113.9\\ns99-fake" in out


def test_an_error_quoting_a_tool_is_printed_as_written(capsys):
    import typer

    from starter.output import CliError, emit_error

    with pytest.raises(typer.Exit):
        emit_error(CliError(f"the tool answered: {HOSTILE}"), json_mode=False)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "[red]APPROVED[/]" in err


def _home_with_a_hostile_change(tmp_path: Path) -> Path:
    """A home whose ledger holds one sinkhole of a hostile target (run r1), and the shipped policy."""
    from datetime import timedelta

    from handrail.gate.ledger import Ledger
    from handrail.trust.synth import SyntheticLedger

    home = tmp_path / "home"
    home.mkdir()
    ledger = Ledger(home / "ledger.db")
    with SyntheticLedger(ledger) as syn:
        syn.change("dns.sinkhole", datetime.now(UTC) - timedelta(hours=1), run_id="r1", step_id="s01",
                   target=f"{FORGED} {HOSTILE}")
    ledger.close()
    (tmp_path / "policy.toml").write_text((ROOT / "policy.toml").read_text())
    return home


def test_review_prints_a_hostile_target_from_the_ledger_as_written(tmp_path):
    from starter.cli import app

    home = _home_with_a_hostile_change(tmp_path)
    env = {"HANDRAIL_POLICY": str(tmp_path / "policy.toml"), "HANDRAIL_HOME": str(home), "COLUMNS": "400"}
    result = CliRunner().invoke(app, ["review"], env=env)
    assert result.exit_code == 0, result.output
    _assert_inert(result.output)
    assert "203.0.113.9\\ns99-fake" in result.output


# -- the approvers' notices --------------------------------------------------------------------
def _notice(**over):
    from handrail.notify.message import Notice

    fields = dict(event="waiting", run_id="phishing-1", step_id="s01-proxy.block", runbook="phishing",
                  requested_by="mailbox", subject="<abc@evil.example> <!channel>",
                  change=Change(kind="proxy.block",
                                target="https://evil.example/login\n\nApprove:  handrail approve other-run "
                                       "--step s01 --as bob\u202e"),
                  why="[Approve here](https://evil.example/approve) " + "x" * 5000,
                  deadline=T0, approvers=["bob"])
    return Notice(**{**fields, **over})


def test_a_notice_keeps_hostile_values_on_their_line_unlinked_and_bounded():
    from handrail.notify.message import MAX_SAID, email_message, render_text, webhook_body

    text = render_text(_notice(), "bob")
    approve = [line for line in text.splitlines() if line.startswith("Approve:")]
    assert approve == ["Approve:  handrail approve phishing-1 --step s01-proxy.block --as bob"]  # none forged
    assert "login\\n\\nApprove:" in text and "\\u202e" in text and "\u202e" not in text
    assert "://" not in text and "https[:]//evil.example/login" in text  # no clickable phishing or "approval" URL
    assert max(len(line) for line in text.splitlines()) < MAX_SAID + 20  # a 5000-character reason is cut
    chat = webhook_body(_notice())["text"]
    assert "<!channel>" not in chat and "](" not in chat  # no Slack mention, no Teams Markdown link
    mail = email_message(_notice(), "handrail@corp.example", "bob@corp.example", "bob")
    assert [line for line in mail.get_content().splitlines() if line.startswith("Approve:")] == approve


# -- SIEM alerts, the HTML report, case files -------------------------------------------------
def test_a_syslog_alert_carries_no_control_character():
    from handrail.tools.alerts_syslog import _sd_value, cef

    event = cef("alert.raised", f"Phish: {HOSTILE}", "P1", {"msg": f"{HOSTILE}\x00cut\u2028\x85next\r\nline"})
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u202e]", event), repr(event)
    assert "msg=" in event and "\\\\x00cut" in event and "\\nline" in event
    assert not re.search(r"[\x00-\x1f]", _sd_value("run\n1\x1b"))


def test_the_html_report_escapes_every_ledger_string(tmp_path):
    from datetime import timedelta

    from handrail.gate.ledger import Ledger
    from handrail.trust.baseline import compute_baseline
    from handrail.trust.report import render
    from handrail.trust.synth import KNOWN_NOW, KNOWN_T0, SyntheticLedger

    ledger = Ledger(tmp_path / "l.db")
    with SyntheticLedger(ledger) as syn:
        syn.change("dns.sinkhole", KNOWN_T0 + timedelta(hours=1), run_id="r", step_id="s")
    baseline = compute_baseline(ledger, KNOWN_NOW)
    baseline.kinds[0].guardrails.by_guardrail = {"<b>g</b>": {"<script>alert(1)</script>": 1}}
    page = render(baseline)
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<b>" not in page
    ledger.close()


async def test_a_case_file_gets_text_not_controls():
    from handrail.tools.cases import LabCases

    sent = []

    class _Http:
        async def json(self, method, path, json=None, **_):
            sent.append(json)
            return {"id": "C-1", "title": "t", "status": "open", "created_at": "now", "author": "a", "text": "t",
                    "at": "now", "kind": "k", "ref": "r", "added_at": "now"}

    cases = LabCases(_Http())
    await cases.create_case(f"Phishing: {HOSTILE}\nforged", description=f"line one\r\n{HOSTILE}")
    await cases.add_note("C-1", "handrail", "EDR scan of host\x1b[2J: clean\nnext line")
    await cases.add_artefact("C-1", "email", "mailbox:MSG-1", description=HOSTILE)
    title, description = sent[0]["title"], sent[0]["description"]
    assert "\n" not in title and "\\x1b[2J" in title and title.endswith("\\nforged")
    assert description.startswith("line one\n") and "\\u202efdp.exe" in description
    assert sent[1]["text"] == "EDR scan of host\\x1b[2J: clean\nnext line" and sent[2]["ref"] == "mailbox:MSG-1"
    assert not any(re.search(r"[\x00-\x09\x0b-\x1f\u202e]", str(v)) for body in sent for v in body.values())


def test_popular_check_prints_a_pasted_hostile_url_as_written(tmp_path):
    from starter.cli import app

    ranking = ROOT / "tests" / "data" / "top-sites.csv"
    policy = (ROOT / "policy.toml").read_text().replace("[settings.popular]\n",
                                                        f'[settings.popular]\npath = "{ranking}"\n', 1)
    (tmp_path / "policy.toml").write_text(policy)
    env = {"HANDRAIL_POLICY": str(tmp_path / "policy.toml"), "HANDRAIL_HOME": str(tmp_path / "home"),
           "COLUMNS": "400"}
    result = CliRunner().invoke(app, ["popular", "check", "[red]APPROVED[/] \x1b[2J"], env=env)
    assert "[red]APPROVED[/] \\x1b[2J is not a domain name" in result.output, result.output


def test_a_rollback_plan_prints_a_hostile_target_as_written(tmp_path):
    from starter.cli import app

    home = _home_with_a_hostile_change(tmp_path)
    env = {"HANDRAIL_POLICY": str(tmp_path / "policy.toml"), "HANDRAIL_HOME": str(home), "COLUMNS": "900"}
    result = CliRunner().invoke(app, ["rollback", "r1", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    _assert_inert(result.output)
    assert "203.0.113.9\\ns99-fake" in result.output


def test_drift_prints_a_hostile_change_and_tool_detail_as_written(monkeypatch, tmp_path):
    import typer

    from handrail.gate.reconcile import DriftItem, ReconcileReport
    from starter import drift_cmd

    async def report(*_a, **_k):
        return ReconcileReport(drift=[DriftItem(change_id="r1/s01", run_id="r1", change=f"dns.sinkhole {FORGED}",
                                                ledger="live", tool_holds=False, detail=HOSTILE)])

    async def connect(*_a, **_k):
        return None

    console = _terminal()
    monkeypatch.setattr(drift_cmd, "drift_report", report)
    monkeypatch.setattr("handrail.ops.temporal.connect", connect)
    monkeypatch.setattr(drift_cmd, "console", console)
    monkeypatch.setenv("HANDRAIL_HOME", str(tmp_path))
    app = typer.Typer()
    app.command("drift")(drift_cmd.drift)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["drift"])
    assert result.exit_code == 1, result.output  # drift found
    out = _printed(console)
    _assert_inert(out)
    assert "203.0.113.9\\ns99-fake" in out


async def test_following_a_run_prints_its_hostile_events_as_written():
    from starter.output import SafeConsole
    from starter.progress import follow

    console = SafeConsole(file=io.StringIO(), force_terminal=False, width=400)  # no spinner: only the lines
    status = _hostile_status()

    async def read():
        return status

    await follow(read, lambda s: True, status.run_id, console, poll_s=0)
    out = _printed(console)
    _assert_inert(out)
    assert "203.0.113.9\\ns99-fake" in out and not any(line.startswith("s99-fake") for line in out.splitlines())


def test_a_stray_closing_tag_cannot_make_show_fail(monkeypatch):
    """Rich raises MarkupError on a '[/]' with nothing to close: a subject holding one made
    `handrail show` of that run fail instead of showing it to the approver."""
    from starter import common

    console = _terminal()
    monkeypatch.setattr(common, "console", console)
    monkeypatch.setattr(common, "print_url", lambda *a, **k: None)
    status = _hostile_status().model_copy(update={"subject": "Invoice [/] overdue"})
    common._render_status(status, settings=types.SimpleNamespace(ui_url="http://ui", namespace="default"))
    assert "subject Invoice [/] overdue" in _printed(console)
