"""Every trigger field has a length and character limit, and a violation is one sentence."""

from __future__ import annotations

import pytest
import typer
from pydantic import ValidationError

from handrail.gate.limits import explain
from handrail.gate.models import EgressBlockTrigger, RollbackTrigger
from handrail.intel.messages import IntelSyncTrigger
from handrail.runbooks.exfiltration import ExfiltrationTrigger, FollowUpTrigger
from handrail.runbooks.phishing.rules import PhishingTrigger
from handrail.runbooks.privilege import PrivilegeTrigger
from handrail.runbooks.rogue import RogueTrigger
from starter.output import command

pytestmark = pytest.mark.unit

OK = {
    EgressBlockTrigger: {"ip": "203.0.113.7", "reason": "C2 beacon", "requested_by": "alice"},
    RollbackTrigger: {"run_id": "egress-block-1a2b", "requested_by": "alice"},
    ExfiltrationTrigger: {"alert_id": "DLP-000001"},
    FollowUpTrigger: {"host": "lt-0042", "parent_run": "exfil-1", "parent_alert": "DLP-1", "indicators": ["a" * 64]},
    PrivilegeTrigger: {"event_id": "IAM-000003"},
    RogueTrigger: {"mac": "00:1a:2b:3c:4d:5e"},
    IntelSyncTrigger: {},
    PhishingTrigger: {"mailbox_id": "MSG-000012", "message_id": "<a.b@mail.example>", "sha256": "ab" * 32},
}

BAD = [
    (EgressBlockTrigger, "reason", "x" * 501, "at most 500 characters"),
    (EgressBlockTrigger, "reason", "line one\nline two", "line breaks"),
    (EgressBlockTrigger, "requested_by", "a" * 65, "at most 64 characters"),
    (EgressBlockTrigger, "requested_by", "alice; rm -rf", "may contain only"),
    (EgressBlockTrigger, "requested_by", "", "must not be empty"),
    (EgressBlockTrigger, "ip", "203.0.113.7\n161.71.0.0/16", "line breaks"),
    (EgressBlockTrigger, "ip", "evil.example", "IPv4 or IPv6"),
    (RollbackTrigger, "run_id", "../../etc/passwd", "may contain only"),
    (ExfiltrationTrigger, "alert_id", "DLP-" + "1" * 200, "at most 128"),
    (PrivilegeTrigger, "event_id", "IAM-1\u2028x", "line breaks"),
    (RogueTrigger, "mac", "00:11\x1b[2J", "control characters"),
    (EgressBlockTrigger, "reason", "ok \u202egnp.exe", "control characters"),
    (IntelSyncTrigger, "reason", "r" * 10_000, "at most 500"),
    (PhishingTrigger, "message_id", "<" + "m" * 1000 + ">", "at most 998"),
    (PhishingTrigger, "sha256", "not-a-hash", "64 hexadecimal digits"),
    (PhishingTrigger, "mailbox_id", "MSG-1\r\nX-Injected: 1", "line breaks"),
]


@pytest.mark.parametrize("model", list(OK))
def test_ordinary_triggers_pass(model):
    model(**OK[model])


@pytest.mark.parametrize("model, field, value, words", BAD, ids=[f"{m.__name__}.{f}-{w[:12]}" for m, f, _, w in BAD])
def test_each_field_has_a_limit_with_a_clear_error(model, field, value, words):
    with pytest.raises(ValidationError) as err:
        model(**{**OK[model], field: value})
    sentence = explain(err.value)
    assert sentence.startswith(field) and words in sentence and sentence.endswith(".") and "\n" not in sentence


def test_a_poller_skips_a_record_over_the_limits_and_starts_the_rest():
    from activities.triggers import valid_only

    triggers = valid_only(lambda i: ExfiltrationTrigger(alert_id=i), ["DLP-1", "D" * 500, "DLP-2"])
    assert [t.alert_id for t in triggers] == ["DLP-1", "DLP-2"]


def test_the_cli_reports_a_limit_as_a_usage_error(capsys):
    @command
    def start(as_json: bool = True):
        EgressBlockTrigger(ip="203.0.113.7", reason="x" * 600, requested_by="alice")

    with pytest.raises(typer.Exit) as exit_:
        start(as_json=True)
    assert exit_.value.exit_code == 2
    assert '"error": "reason must be at most 500 characters, not 600."' in capsys.readouterr().out
