"""Secrets are detected and redacted in the audit, the logs and case evidence; ordinary
data and stored inverses are left exactly as they are."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handrail.actions.cases import CasesOpen
from handrail.gate.ledger import Ledger
from handrail.gate.models import AuditEvent, Change, ChangeRecord, Mode
from handrail.gate.redact import REDACTED, _redact_all, redact, redact_text, secret_name
from lab.testing import in_process_lab

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"

# (text with a secret, the secret, what must survive)
FORMATS = [
    ("Authorization: Basic YWxpY2U6aHVudGVyMg==", "YWxpY2U6aHVudGVyMg==", "Authorization"),
    ("sent Basic YWxpY2U6aHVudGVyMg== to the proxy", "YWxpY2U6aHVudGVyMg==", "to the proxy"),
    ("Authorization: Bearer abc.def.ghi-123456", "abc.def.ghi-123456", "Authorization"),
    ("curl -H 'X-Token: 1' -H 'bearer q1w2e3r4t5y6u7'", "q1w2e3r4t5y6u7", "curl"),
    ("fetch https://svc:Hunter2pass@db.corp.example/x failed", "Hunter2pass", "https://svc:"),
    ("GET https://api.example/v1?api_key=sk123456789&page=2", "sk123456789", "page=2"),
    ("callback https://a.example/cb?x=1&token=tok_abcdef99", "tok_abcdef99", "x=1"),
    ("https://a.example/?access_token=ya29.a0AfH6SM", "ya29.a0AfH6SM", "a.example"),
    ("user alice password=hunter2 logged in", "hunter2", "logged in"),
    ('{"client_secret": "c5cr3t-value", "user": "bob"}', "c5cr3t-value", '"user": "bob"'),
    ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI", "export"),
    (f"session {JWT} expired", JWT[:40], "expired"),
    ("key AKIAIOSFODNN7EXAMPLE was used", "AKIAIOSFODNN7EXAMPLE", "was used"),
    ("token ghp_" + "A1b2" * 9 + " leaked", "ghp_" + "A1b2" * 9, "leaked"),
    ("slack xoxb-1234567890-abcdefghij", "xoxb-1234567890", "slack"),
    ("maps AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA1234567890", "maps"),
    ("stripe sk_live_51Habcdefghijklmnop", "sk_live_51Habcdefghijklmnop", "stripe"),
    ("publish with npm_" + "A1b2c3D4e5" * 3 + "x1Y2z3 now", "npm_" + "A1b2c3D4e5" * 3, "publish with"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1rZXk", ""),
    ("sig=Zx9Kq2Lm8Np4Rt6Vw1Yb3Cd5Ef7Gh0Jk2Mn4Pq", "Zx9Kq2Lm8Np4Rt6Vw1Yb3Cd5Ef7Gh0Jk2Mn4Pq", "sig="),  # by shape
]


@pytest.mark.parametrize("text, secret, kept", FORMATS, ids=[f[0][:24] for f in FORMATS])
def test_each_secret_format_is_redacted(text, secret, kept):
    out = redact_text(text)
    assert secret not in out and REDACTED in out and kept in out


@pytest.mark.parametrize("text", [
    "tokens_used=5 max_tokens=10 token_type=bearer", "basic information about the incident",
    "token validation failed for alice", "sha256=" + "ab12" * 16, "id=3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "https://evil.example/login?user=alice", "set:" + "0f" * 32, "see https://a.example/path/to/page",
    "password reset requested", "the bearer of this note",
])
def test_ordinary_text_is_left_alone(text):
    assert redact_text(text) == text


# Fragments that start, end or nearly make up every pattern, and ordinary audit text between.
_PIECES = [f[0] for f in FORMATS] + [f[1] for f in FORMATS] + [
    "Authorization", "authorization:", "Bearer ", "basic ", "Basic\t", "://", "svc:pw@", "?", "&", ";", "=",
    ":", " = '", '"', "api_key", "API-KEY", "x-api-key", "Password", "PWD", "secret", "Token", "sig", "code",
    "eyJ", "eyJabcd.", "AKIA", "ASIA", "ghp_", "github_pat_", "xoxb-", "AIza", "sk_live_", "rk_test_", "npm_",
    "-----BEGIN", " PRIVATE KEY-----", "A1b2C3d4" * 4, "abcdef0123456789" * 2, "Zx9" * 11, "2026-11-30T09:42:38Z",
    "firewall.egress_block", "203.0.113.7", "2001:db8::1", "run-1/s01", "sha256:", "0f" * 32, " ", "\n",
]


@pytest.mark.parametrize("text", [f[0] for f in FORMATS] + [f[1] for f in FORMATS])
def test_the_quick_look_finds_every_known_format_even_bare(text):
    assert redact_text(text) == _redact_all(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES) | st.text(max_size=12), max_size=12).map("".join))
def test_the_quick_look_never_skips_a_secret(text):
    """The anchor scan that lets most strings through unscanned agrees with all the patterns."""
    assert redact_text(text) == (text if len(text) < 8 else _redact_all(text))


def test_keys_by_name_not_by_substring():
    data = {"token": "t", "api_key": "k", "X-Api-Key": "k", "clientSecret": "c", "Authorization": "a",
            "tokens_used": 5, "max_tokens": 3, "token_type": "bearer", "idempotency_key": "run/s1",
            "password_hash": "h", "requested_by": "alice", "signature": "sshsig", "public_key": "ssh-ed25519 AAAA"}
    out = redact(data)
    assert [k for k, v in out.items() if v == REDACTED] == ["token", "api_key", "X-Api-Key", "clientSecret",
                                                             "Authorization"]
    assert not secret_name("tokens_used") and secret_name("aws_secret_access_key")


def test_redacting_hostile_text_is_linear():
    redact_text("password=" + "x" * 500_000 + " eyJ" + "a" * 500_000 + " https://" + ":" * 500_000)


def test_audit_is_redacted_but_stored_inverses_and_before_states_are_not(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    ledger.append([AuditEvent(id="r:1", at=T0, run_id="r", event="alert.raised",
                              data={"note": "curl https://svc:Hunter2pass@db.example/ "
                                                    "-H 'Authorization: Bearer qwertyuiop'",
                                    "tokens_used": 7})])
    row = next(ledger.audit_rows())
    assert "Hunter2pass" not in json.dumps(row) and "qwertyuiop" not in json.dumps(row)
    assert row["data"]["tokens_used"] == 7
    before = {"value": "https://u:p4ssw0rd@old.example/", "token": "restore-me"}
    record = ChangeRecord(change_id="r/s1", run_id="r", step_id="s1", mode=Mode.GUARDED, requested_by="alice",
                          change=Change(kind="proxy.block", target="x.example", params={"comment": "password=abc123"}),
                          before=before, applied_at=T0,
                          inverse=Change(kind="proxy.unblock", target="x.example", params={"token": "restore-me"}))
    ledger.begin_change(record)
    stored = ledger.change("r/s1")
    assert stored.before == before and stored.inverse.params == {"token": "restore-me"}
    assert "abc123" not in stored.change.params["comment"]


def test_logs_are_redacted():
    import structlog

    from handrail.gate.redact import redact_processor

    out = io.StringIO()
    log = structlog.wrap_logger(structlog.PrintLogger(out), processors=[redact_processor,
                                                                        structlog.processors.JSONRenderer()])
    log.info("calling https://svc:Hunter2pass@db.example/?api_key=k123456", password="p", tokens_used=3)
    line = out.getvalue()
    assert "Hunter2pass" not in line and "k123456" not in line and '"p"' not in line and '"tokens_used": 3' in line


async def test_case_evidence_is_redacted(tmp_path):
    async with in_process_lab(tmp_path) as lab:
        change = Change(kind="cases.open", target="run-r", params={
            "title": "Compromise: login with password=hunter2", "severity": "high",
            "description": "attacker used https://admin:Hunter2pass@vpn.example/",
            "artefacts": json.dumps([{"kind": "log", "ref": "siem:1",
                                      "description": "Authorization: Bearer qwertyuiop1"}]),
        })
        await CasesOpen().apply(lab.tools, change, "r/s1")
        [case] = await lab.tools.cases.list_cases(run_id="run-r")
        full = (await lab.tools.cases.get_case(case.id)).model_dump_json()
        assert "hunter2" not in full and "Hunter2pass" not in full and "qwertyuiop1" not in full
        assert "vpn.example" in full and REDACTED in full
