"""Record, with an OLD checkout of Handrail, the histories `tests/test_replay_in_flight.py` replays.

Not a test module (pytest collects it only when named). Each function below runs one run
on the time-skipping server with the worker of the checkout it is run from, as a worker of
that release ran it, and saves the run's history as
``tests/data/<name>_<commit>.history.json``. Recording with the old code itself (rather
than with today's code and a patch forced off) is what makes the histories a fair test: a
history is then exactly what a worker of that commit left behind for today's worker to
replay, including whatever else that release did differently.

    git worktree add /tmp/old <commit>             # the commit named in the file name
    cp tests/record_in_flight.py tests/runbooks_for_tests.py /tmp/old/tests/
    cd /tmp/old && HANDRAIL_RECORD_INTO=<this repo>/tests/data \\
        python -m pytest -q -p no:cacheprovider tests/record_in_flight.py -k <scenario>

`tests/runbooks_for_tests.py` is copied along for `BlockManyRunbook`'s `kind` field (newer
than 3ae8ef3; the workflow is otherwise the same, and it only drives the gate, which is
the old commit's). The commit of each scenario is named in its docstring.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from handrail.gate.models import RunState, StepState
from handrail.ops.config import load_settings
from handrail.runbooks.exfiltration import ExfiltrationTrigger
from handrail.runbooks.privilege import PrivilegeTrigger
from lab.store import Store
from lab.testing import prepare
from tests.runbooks_for_tests import BlockMany, BlockManyRunbook
from tests.support import make_decision, make_policy, running_stack, send_decision
from workflows.exfiltration import ExfiltrationResponse
from workflows.privilege_guard import PrivilegeGuard

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "policy.toml").read_text()
INTO = Path(os.environ.get("HANDRAIL_RECORD_INTO", ROOT / "tests" / "data"))
COMMIT = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                        check=True).stdout.strip()


async def _save(handle, name: str) -> None:
    history = await handle.fetch_history()
    (INTO / f"{name}_{COMMIT}.history.json").write_text(history.to_json())


def _with_first_rule(rule: str) -> str:
    """The shipped policy with `rule` tried before its exfiltration rules."""
    assert "\nrules = [\n" in SHIPPED
    return SHIPPED.replace("\nrules = [\n", f"\nrules = [\n  {rule},\n", 1)


def _alert_sent_to(tmp_path: Path, alert_id: str, destination: str) -> None:
    """The lab's DLP alert `alert_id`, sent to `destination` (before the stack opens the lab)."""
    settings = load_settings({"HANDRAIL_HOME": str(tmp_path / "home")})
    prepare(settings)
    store = Store(settings.lab_db_path)
    doc = store.get("dlp", "alerts", alert_id)
    doc["sample"]["destination"] = destination
    store.put("dlp", "alerts", alert_id, doc)
    store.close()


async def _decide_the_question(stack, handle, approver: str, approve: bool, reason: str) -> None:
    status = await stack.wait_for(
        handle, lambda s: (p := s.pending_step()) is not None and p.change.kind == "exfiltration.classify_malicious")
    await handle.signal("decide", make_decision(approver, approve, status.pending_step().step_id, reason, status))


async def test_privilege_recommit_approved_by_its_starter(time_env, tmp_path):
    """3ae8ef3: bob starts the privilege guard by hand and approves its recommit himself,
    which the gate then allowed (the requester is the affected principal, not bob)."""
    async with running_stack(time_env.client, tmp_path, SHIPPED) as stack:
        handle = await stack.start(PrivilegeGuard.run, PrivilegeTrigger(event_id="IAM-EVT-0003", requested_by="bob"),
                                   id="recorded-privilege-starter")
        await stack.wait_for(handle, lambda s: len(s.steps) == 2 and s.steps[1].state == StepState.AWAITING_APPROVAL)
        await send_decision(handle, "bob", True, "it was planned")
        result = await handle.result()
        assert result.summary["recommitted_by"] == ["bob"], result.summary
        await _save(handle, "privilege_recommit_by_starter")


async def test_dlp_question_answered(time_env, tmp_path):
    """3ae8ef3: no rule covers DLP-0003 (usb, encrypted archive): the analyst question
    (its `why_asked` is the classification's sentence) is denied by bob: inadvertent."""
    async with running_stack(time_env.client, tmp_path, SHIPPED) as stack:
        handle = await stack.start(ExfiltrationResponse.run,
                                   ExfiltrationTrigger(alert_id="DLP-0003", requested_by="dlp-poller"),
                                   id="recorded-dlp-question")
        await _decide_the_question(stack, handle, "bob", False, "his own backup, known case")
        result = await handle.result()
        assert result.summary["classification"]["by"] == "analyst", result.summary
        await _save(handle, "dlp_question_answered")


async def test_dlp_destination_read_loosely(time_env, tmp_path):
    """839c4e5^ (745235d's loose reading): a rule trusts partner.example, and the alert went
    to 'drop@evil.example, jo@partner.example'; the last address decided: inadvertent."""
    _alert_sent_to(tmp_path, "DLP-0003", "drop@evil.example, jo@partner.example")
    policy = _with_first_rule('{ destination = ["partner.example"], verdict = "inadvertent", why = "our partner" }')
    async with running_stack(time_env.client, tmp_path, policy) as stack:
        handle = await stack.start(ExfiltrationResponse.run,
                                   ExfiltrationTrigger(alert_id="DLP-0003", requested_by="dlp-poller"),
                                   id="recorded-dlp-loose")
        result = await handle.result()
        assert result.summary["classification"] == {
            "verdict": "inadvertent", "by": "rule", "why": "rule 1: our partner"}, result.summary
        await _save(handle, "dlp_destination_loose")


async def test_dlp_internal_first_address(time_env, tmp_path):
    """8b0d5ab^ (839c4e5's strict reading): `internal = true` trusted the first recipient of
    'me@corp.example, drop@evil.example' (own_domains: corp.example): inadvertent."""
    _alert_sent_to(tmp_path, "DLP-0003", "me@corp.example, drop@evil.example")
    policy = _with_first_rule('{ internal = true, verdict = "inadvertent", why = "it stayed inside" }')
    async with running_stack(time_env.client, tmp_path, policy) as stack:
        handle = await stack.start(ExfiltrationResponse.run,
                                   ExfiltrationTrigger(alert_id="DLP-0003", requested_by="dlp-poller"),
                                   id="recorded-dlp-first-address")
        result = await handle.result()
        assert result.summary["classification"] == {
            "verdict": "inadvertent", "by": "rule", "why": "rule 1: it stayed inside"}, result.summary
        await _save(handle, "dlp_internal_first_address")


async def test_sinkhole_of_a_name_covering_an_allowlisted_one(time_env, tmp_path):
    """3ae8ef3: a sinkhole of parcel-fees.example, whose never_touch lists
    track.parcel-fees.example (a name *under* it, which that release did not see as
    touched), waits for an approver (approve mode) and bob approves it."""
    policy = make_policy(guardrails='{ type = "never_touch", values = ["track.parcel-fees.example"] }').replace(
        '[actions."firewall.egress_block"]', '[actions."dns.sinkhole"]')
    policy += '\n[actions."dns.unsinkhole"]\nmode = "guarded"\n'
    async with running_stack(time_env.client, tmp_path, policy, workflows=[BlockManyRunbook]) as stack:
        handle = await stack.start(BlockManyRunbook.run, BlockMany(targets=["parcel-fees.example"], kind="dns.sinkhole",
                                                                   requested_by="alice"),
                                   id="recorded-sinkhole-covering")
        await stack.wait_for(handle, lambda s: s.state == RunState.AWAITING_APPROVAL)
        await send_decision(handle, "bob")
        result = await handle.result()
        assert [s.state for s in result.steps] == [StepState.APPLIED], result.steps
        assert result.steps[0].verdicts == [], result.steps[0].verdicts
        await _save(handle, "sinkhole_covering_name_approved")
