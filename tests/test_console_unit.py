"""The analyst's console: the pure pieces behind what `approve`, `show` and `up` print."""

from __future__ import annotations

import types
from datetime import UTC, datetime

import pytest

from handrail.gate.models import Change, RunState, RunStatus, StepRecord, StepState
from starter.output import CliError

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _status(*states: StepState, state: RunState = RunState.AWAITING_APPROVAL) -> RunStatus:
    steps = [StepRecord(step_id=f"s0{i + 1}-firewall.egress_block", state=s, change_digest=f"sha256:{i}",
                        change=Change(kind="firewall.egress_block", target=f"203.0.113.{i + 1}"))
             for i, s in enumerate(states)]
    return RunStatus(run_id="run-1", runbook="egress-block", state=state, requested_by="alice", subject="",
                     started_at=T0, steps=steps)


def test_a_decision_is_for_the_waiting_step_or_the_one_named():
    from starter.signing import choose_step

    status = _status(StepState.APPLIED, StepState.AWAITING_APPROVAL)
    assert choose_step(status, "run-1", None).step_id == "s02-firewall.egress_block"
    assert choose_step(status, "run-1", "s02-firewall.egress_block").change_digest == "sha256:1"
    with pytest.raises(CliError, match="Step s01-firewall.egress_block is applied, not waiting; "
                                       "run run-1 waits on s02-firewall.egress_block"):
        choose_step(status, "run-1", "s01-firewall.egress_block")
    with pytest.raises(CliError, match="No step s03-firewall.egress_block is open in run run-1 yet, so there is no "
                                       "change digest to sign"):
        choose_step(status, "run-1", "s03-firewall.egress_block")
    with pytest.raises(CliError, match="waits on no step"):
        choose_step(_status(StepState.APPLIED, state=RunState.COMPLETED), "run-1", None)


def _refusal(status, step: str) -> str:
    from starter.signing import choose_step

    with pytest.raises(CliError) as refused:
        choose_step(status, "run-1", step)
    return str(refused.value)


@pytest.mark.parametrize("step, why", [
    ("s09-nothing", "nothing is not an action kind"),
    ("s01-dns.sinkhole", "its step 1 is s01-firewall.egress_block"),
    ("firewall.egress_block", "a step id is sNN-KIND, like s01-firewall.egress_block"),
    ("s00-firewall.egress_block", "steps count from s01"),
])
def test_a_step_the_run_never_has_is_named_so_with_the_runs_steps(step, why):
    said = _refusal(_status(StepState.APPLIED, StepState.AWAITING_APPROVAL), step)
    assert said.startswith(f"Run run-1 has no step {step} ({why}). Its steps: s01-firewall.egress_block (applied), "
                           "s02-firewall.egress_block (awaiting_approval). Leave out --step to decide the waiting one "
                           "(s02-firewall.egress_block), or see each with `handrail show run-1`."), said
    assert "has not opened yet" not in said


def test_a_step_that_may_still_open_is_told_apart_from_one_that_never_will():
    live = _status(StepState.APPLIED, StepState.AWAITING_APPROVAL)
    later = _refusal(live, "s09-firewall.egress_block")  # a runbook's steps are dynamic: it may come
    assert later == ("No step s09-firewall.egress_block is open in run run-1 yet, so there is no change digest to "
                     "sign: steps open as the run reaches them. Its steps so far: s01-firewall.egress_block (applied), "
                     "s02-firewall.egress_block (awaiting_approval). It waits on s02-firewall.egress_block. Decide it "
                     "once `handrail show run-1` lists it as waiting.")
    ended = _status(StepState.APPLIED, state=RunState.COMPLETED)
    assert _refusal(ended, "s02-firewall.egress_block") == (
        "Run run-1 has no step s02-firewall.egress_block (it has ended (completed), so no step will open). "
        "Its steps: s01-firewall.egress_block (applied). None waits now; see each with `handrail show run-1`.")
    hostile = _refusal(live, "s03-x\n[red]Approved")
    assert "\n" not in hostile and "s03-x\\n[red]Approved" in hostile  # one line; markup escaped when printed


class _Handle:
    """Answers the status query with the statuses given, one per call (the last one repeats)."""

    def __init__(self, *statuses: RunStatus):
        self.statuses = list(statuses)

    async def query(self, name, **_):
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


async def test_approve_waits_for_a_running_run_to_arrive_somewhere_within_its_bound():
    from starter.settle import run_moved_on

    running = _status(StepState.APPLIED, state=RunState.RUNNING)
    done = _status(StepState.APPLIED, state=RunState.COMPLETED)
    waiting = _status(StepState.APPLIED, StepState.AWAITING_APPROVAL)
    assert (await run_moved_on(_Handle(running, running, done), running, 5, poll_s=0)).state == RunState.COMPLETED
    assert (await run_moved_on(_Handle(waiting), running, 5, poll_s=0)).state == RunState.AWAITING_APPROVAL
    assert (await run_moved_on(_Handle(done), waiting, 5, poll_s=0)) is waiting  # not on its way: no query
    assert (await run_moved_on(_Handle(done), running, 0)).state == RunState.RUNNING  # bound spent: as it was


def test_a_rejected_decision_names_its_sender_or_says_it_had_none():
    from handrail.gate.models import Decision, DecisionRecord
    from starter.common import rejected_line

    def line(approver: str) -> str:
        return rejected_line(DecisionRecord(decision=Decision(id="x", approver=approver), accepted=False, at=T0,
                                            why="the decision is not signed"))

    assert line("") == "[yellow]rejected decision[/] from an unnamed sender: the decision is not signed"
    assert line("  ") == line("")
    assert line("mallory") == "[yellow]rejected decision[/] from mallory: the decision is not signed"
    assert "from \\[red]boss" in line("[red]boss")  # markup in a raw signal's name is printed, not obeyed


def test_up_prints_each_schedules_real_state_or_nothing():
    from starter.stack_view import schedules_line

    assert schedules_line({"reconcile": "active", "mailbox": "paused", "dlp": "paused"}) == (
        "Schedules active: reconcile; paused: dlp, mailbox (handrail schedule NAME --unpause)")
    assert schedules_line({"reconcile": "active"}) == "Schedules active: reconcile"
    assert schedules_line({}) == ""


def test_a_workflow_that_is_no_run_is_described_not_denied():
    from starter.workflow_view import is_runbook_run, workflow_lines

    expiry = {"workflow_id": "expiry-egress-block-1", "type": "ExpireChanges", "status": "running",
              "started_at": "2026-01-05T09:00:00+00:00", "closed_at": None, "handrail_state": "expiring",
              "runbook": "expiry", "scheduled_by": None,
              "expires": {"run_id": "egress-block-1", "changes": [
                  {"change_id": "c1", "change": "firewall.egress_block 203.0.113.7",
                   "expires_at": "2026-01-05T11:00:00+00:00", "reverted_at": None, "reverted_by": None},
                  {"change_id": "c2", "change": "firewall.egress_block 203.0.113.8",
                   "expires_at": "2026-01-05T12:00:00+00:00", "reverted_at": "2026-01-05T10:00:00+00:00",
                   "reverted_by": "carol"}]}}
    assert not is_runbook_run(expiry)
    assert workflow_lines(expiry) == [
        "expiry-egress-block-1 is no runbook run: it is the Temporal workflow ExpireChanges (running, started "
        "2026-01-05 09:00:00Z), so it has no step timeline.",
        "HandrailState: expiring",
        "It reverts the changes of run egress-block-1 when they expire (`handrail show egress-block-1`):",
        "  firewall.egress_block 203.0.113.7: expires 2026-01-05 11:00:00Z, pending",
        "  firewall.egress_block 203.0.113.8: expires 2026-01-05 12:00:00Z, reverted 2026-01-05 10:00:00Z by carol",
    ]
    reconcile = {"workflow_id": "handrail-reconcile-run-2026-01-05T09:05:00Z", "type": "Reconcile",
                 "status": "completed", "started_at": "2026-01-05T09:05:00+00:00",
                 "closed_at": "2026-01-05T09:05:01+00:00", "handrail_state": None, "runbook": None,
                 "scheduled_by": "handrail-reconcile"}
    assert not is_runbook_run(reconcile)
    assert workflow_lines(reconcile) == [
        "handrail-reconcile-run-2026-01-05T09:05:00Z is no runbook run: it is the Temporal workflow Reconcile "
        "(completed, started 2026-01-05 09:05:00Z, closed 2026-01-05 09:05:01Z), so it has no step timeline.",
        "Started by the schedule handrail-reconcile (`handrail schedule NAME --show`).",
    ]
    assert is_runbook_run({**reconcile, "type": "EgressBlock", "runbook": "egress-block"})


def test_show_names_who_started_a_run_whose_requester_is_the_person_it_is_about(monkeypatch):
    from rich.console import Console

    from starter import common

    status = _status(StepState.AWAITING_APPROVAL)
    status.requested_by, status.summary = "rcollins", {"started_by": "alice"}  # privilege guard's shape
    monkeypatch.setattr(common, "console", Console(record=True, width=200, color_system=None))
    monkeypatch.setattr(common, "print_url", lambda *a, **k: None)
    common._render_status(status, settings=types.SimpleNamespace(ui_url="http://ui", namespace="default"))
    shown = common.console.export_text()
    assert "requested by rcollins (the person the change is about; started by alice)" in shown


def test_show_puts_a_change_ttl_in_its_tense(monkeypatch):
    """A change whose TTL ended says it expired, not that it "expires" at a time now past."""
    from rich.console import Console

    from starter import common

    status = _status(StepState.EXPIRED, StepState.APPLIED, StepState.ROLLED_BACK, state=RunState.COMPLETED)
    for step in status.steps:
        step.expires_at = T0
    monkeypatch.setattr(common, "console", Console(record=True, width=200, color_system=None))
    monkeypatch.setattr(common, "print_url", lambda *a, **k: None)
    common._render_status(status, settings=types.SimpleNamespace(ui_url="http://ui", namespace="default"))
    shown = common.console.export_text()
    assert shown.count("expired (TTL ended) 2026-01-05 09:00Z") == 1, shown
    assert shown.count("expires 2026-01-05 09:00Z") == 1, shown  # the one still applied
    assert shown.count("undone before its TTL ended 2026-01-05 09:00Z") == 1, shown


def test_a_missing_signing_key_names_whose_key_and_where_it_was_looked_for(tmp_path, monkeypatch):
    """`--requested-by mallory` or `--as mallory` without a key: the refusal names mallory and the path."""
    from starter.signing import find_key

    monkeypatch.delenv("HANDRAIL_SIGNING_KEY", raising=False)
    settings = types.SimpleNamespace(home=tmp_path, user="root")
    with pytest.raises(CliError) as refused:
        find_key(settings, None, "mallory")
    message = str(refused.value)
    assert "No signing key for mallory" in message and str(tmp_path / "keys" / "mallory_ed25519") in message
    assert "handrail keys init --user mallory" in message
    with pytest.raises(CliError, match="No signing key for root"):  # nobody named: the OS user's
        find_key(settings, None, None)


@pytest.mark.parametrize("every, says", [("5s", "at least 10s"), ("0s", "at least 10s"), ("banana", "not a duration")])
def test_schedule_every_that_cannot_be_used_is_a_usage_error_before_temporal(every, says, tmp_path):
    """Exit 2 like every other usage error, and without a Temporal server to ask (none listens here)."""
    import json

    from typer.testing import CliRunner

    from starter.cli import app

    env = {"HANDRAIL_HOME": str(tmp_path), "HANDRAIL_TEMPORAL_ADDRESS": "127.0.0.1:9"}
    result = CliRunner().invoke(app, ["schedule", "mailbox", "--every", every, "--json"], env=env)
    assert result.exit_code == 2, result.output
    assert says in json.loads(result.stdout)["error"]


def test_show_of_a_waiting_step_prints_the_whole_approve_command(monkeypatch):
    """Like `pending`: the run id itself, not a placeholder RUN, on one line to copy."""
    from rich.console import Console

    from starter import common

    status = _status(StepState.AWAITING_APPROVAL)
    status.run_id = "egress-block-203.0.113.7-a11920949b"
    monkeypatch.setattr(common, "console", Console(record=True, width=80, color_system=None))
    monkeypatch.setattr(common, "print_url", lambda *a, **k: None)
    common._render_status(status, settings=types.SimpleNamespace(ui_url="http://ui", namespace="default"))
    shown = common.console.export_text()
    assert ("approve it: handrail approve egress-block-203.0.113.7-a11920949b --step s01-firewall.egress_block "
            "--as YOU") in shown, shown
    assert "handrail approve RUN" not in shown


def test_keys_list_shows_each_fingerprint_whole_at_80_columns(tmp_path):
    """The fingerprint is what a person compares with the key's owner: never cut to 'SHA256:eBE…'."""
    from pathlib import Path

    from typer.testing import CliRunner

    from starter.cli import app
    from starter.keys_cmd import demo_policy

    home = tmp_path / "home"
    settings = types.SimpleNamespace(home=home)
    policy = demo_policy(settings, Path(__file__).resolve().parent.parent / "policy.toml")
    env = {"HANDRAIL_HOME": str(home), "HANDRAIL_POLICY": str(policy), "COLUMNS": "80"}
    listed = CliRunner().invoke(app, ["keys", "list", "--json"], env=env)
    fingerprints = [row["fingerprint"] for row in __import__("json").loads(listed.stdout)["keys"]]
    assert len(fingerprints) == 4 and all(f.startswith("SHA256:") for f in fingerprints)
    shown = CliRunner().invoke(app, ["keys", "list"], env=env, terminal_width=80)
    assert shown.exit_code == 0, shown.output
    for fingerprint in fingerprints:
        assert fingerprint in shown.output, shown.output
    assert "…" not in shown.output


def test_the_verdict_table_folds_a_long_domain_at_80_columns_never_cuts_it():
    """`phishing triage` / `show`: the domain to be sinkholed and its evidence are read whole."""
    from rich.console import Console

    from starter.phishing_triage import verdict_table

    domain = "micr0soft-365-password-reset-portal.example"
    rows = [{"domain": domain, "verdict": "high", "score": 8, "action": "sinkhole",
             "evidence": ["not the sender's domain (m365-tenant-notice-service-mail.example)"]}]
    console = Console(record=True, width=80, color_system=None)
    console.print(verdict_table(rows))
    text = console.export_text()
    assert "…" not in text, text
    cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    assert domain in cells, text


def test_a_rollback_plan_shows_a_long_target_whole_at_80_columns(tmp_path):
    """`rollback --dry-run`: what will be undone is read whole, never cut to 'https://storage.google…'."""
    from datetime import timedelta
    from pathlib import Path

    from typer.testing import CliRunner

    from handrail.gate.ledger import Ledger
    from handrail.trust.synth import SyntheticLedger
    from starter.cli import app

    url = "https://storage.googleapis.com/evil-bucket/login.html?u=rchen@corp.example"
    home = tmp_path / "home"
    home.mkdir()
    ledger = Ledger(home / "ledger.db")
    with SyntheticLedger(ledger) as syn:
        syn.change("proxy.block", datetime.now(UTC) - timedelta(hours=1), run_id="r1", step_id="s01", target=url)
    ledger.close()
    policy = tmp_path / "policy.toml"
    policy.write_text((Path(__file__).resolve().parent.parent / "policy.toml").read_text())
    env = {"HANDRAIL_POLICY": str(policy), "HANDRAIL_HOME": str(home), "COLUMNS": "80"}
    result = CliRunner().invoke(app, ["rollback", "r1", "--dry-run"], env=env, terminal_width=80)
    assert result.exit_code == 0, result.output
    assert "…" not in result.output and result.output.count(url) == 2, result.output  # the change and its undo


def test_pending_and_show_say_who_may_decide_a_waiting_step_or_that_nobody_may():
    from io import StringIO

    from rich.console import Console

    from starter import common
    from starter.console_views import print_pending

    out = StringIO()
    console = Console(file=out, width=100, color_system=None)
    row = {"run_id": "privilege-guard-IAM-EVT-0009", "step": "s02-iam.recommit_privilege", "requested_by": "alice",
           "approvals": "0/1", "action": "iam.recommit_privilege", "target": "alice", "why": "mode approve",
           "change": Change(kind="iam.recommit_privilege", target="alice").model_dump()}
    print_pending(console, [row | {"deciders": []}, row | {"deciders": ["erin", "frank"]}, row])
    text = " ".join(out.getvalue().split())
    assert text.count("deciders") == 2
    assert "deciders: nobody may decide it now: every approver the policy names for it requested the run" in text
    assert "deciders erin, frank" in text

    status = _status(StepState.AWAITING_APPROVAL)
    status.steps[0].deciders = []
    shown = StringIO()
    original = common.console
    common.console = Console(file=shown, width=100, color_system=None)
    try:
        common._render_status(status, settings=types.SimpleNamespace(ui_url="http://ui", namespace="default"))
    finally:
        common.console = original
    assert "s01-firewall.egress_block may be decided by: nobody may decide it now" in " ".join(shown.getvalue().split())


def test_review_shows_a_batch_as_its_entries_not_a_hash(tmp_path):
    import ipaddress

    from handrail.intel.backends import open_store
    from handrail.intel.sets import IndicatorSet
    from handrail.ops.config import load_settings
    from handrail.trust.review import ReviewItem
    from starter.trust_cmd import review_target

    settings = load_settings({"HANDRAIL_HOME": str(tmp_path), "HANDRAIL_POLICY": str(tmp_path / "p.toml")})
    ips = [int(ipaddress.ip_address(f"23.1.0.{i}")) for i in range(1, 8)]
    sha = open_store(settings).put_set(IndicatorSet.build(ips, ips))
    item = ReviewItem(change_id="sync-1/s01-proxy.block", run_id="sync-1", kind="proxy.block", target=f"set:{sha}",
                      mode="guarded", applied_at=T0)
    no_record = types.SimpleNamespace(change=lambda change_id: None)
    assert review_target(item, no_record, settings) == (
        "7 entries: 23.1.0.1, 23.1.0.2, 23.1.0.3, 23.1.0.4, 23.1.0.5 and 2 more (all: handrail show sync-1 --members)")
    single = item.model_copy(update={"target": "203.0.113.7"})
    assert review_target(single, no_record, settings) == "203.0.113.7"


def test_show_prints_a_long_table_of_facts_one_entry_a_line():
    """An intel sync's `feeds` (one dict per feed) was one JSON line cut at 300 characters, so
    every feed after the first was invisible in `handrail show`."""
    from io import StringIO

    from rich.console import Console

    from starter import common

    status = _status(StepState.APPLIED, state=RunState.COMPLETED)
    status.summary["feeds"] = {f"feed-{i}": {"source": "fetched", "error": None, "kept": 1000 + i,
                                              "sha256": "ab" * 32} for i in range(5)}
    status.summary["feeds"]["feed-4"].update(source="last-good", error="an HTML page")
    out = StringIO()
    original = common.console
    common.console = Console(file=out, width=100, color_system=None)
    try:
        common._render_status(status, settings=types.SimpleNamespace(ui_url="http://ui", namespace="default"))
    finally:
        common.console = original
    text = out.getvalue()
    assert "  feeds:\n" in text and '"error"' not in text.split("feed-3")[1].split("feed-4")[0]
    assert '"source": "last-good", "error": "an HTML page", "kept": 1004' in " ".join(text.split())
    assert "abab" not in text  # the content hashes are in --json
