"""The notification channels against real local servers: a webhook (stdlib HTTP server) and
SMTP (aiosmtpd), plus the policy's `[settings.notify]` validation."""

from __future__ import annotations

import json
import logging
import socket
import threading
from datetime import datetime, timezone
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from typer.testing import CliRunner

from handrail.gate.models import Change
from handrail.notify import channels
from handrail.notify.message import Notice
from handrail.notify.settings import NotifySettings, SmtpChannel, WebhookChannel
from starter.cli import app
from tests.support import make_policy, with_test_keys

pytestmark = pytest.mark.unit

RUN = "egress-block-5e1f"
STEP = "s01-firewall.egress_block"


def notice(event="waiting", run_id=RUN, approvers=("bob", "erin")) -> Notice:
    return Notice(event=event, run_id=run_id, step_id=STEP, runbook="egress-block", requested_by="alice",
                  change=Change(kind="firewall.egress_block", target="203.0.113.7"), why="policy mode is approve",
                  deadline=datetime(2026, 11, 30, 13, 0, tzinfo=timezone.utc), then="it escalates to role soc-lead",
                  approvers=list(approvers))


class _Hook(BaseHTTPRequestHandler):
    status = 200
    bodies: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).bodies.append((self.path, self.headers.get("Content-Type"), json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    _Hook.bodies, _Hook.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()


async def test_webhook_posts_a_slack_and_teams_compatible_body(hook, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="httpx")
    monkeypatch.setenv("HANDRAIL_TEST_HOOK", f"http://127.0.0.1:{hook.server_port}/services/T000/B000/secret")
    channel = WebhookChannel(name="soc-chat", type="webhook", url_env="HANDRAIL_TEST_HOOK")
    await channels.send(None, notice(), channel, NotifySettings(channels=[channel]))
    [(path, content_type, body)] = _Hook.bodies
    assert path == "/services/T000/B000/secret" and content_type == "application/json"
    assert isinstance(body["text"], str)  # what Slack and Teams incoming webhooks display
    assert f"handrail approve {RUN} --step {STEP} --as bob" in body["text"]
    assert "<" not in body["text"] and '--reason "&lt;why&gt;"' in body["text"]  # no Slack mention or link syntax
    fields = body["handrail"]
    assert fields["event"] == "waiting" and fields["run_id"] == RUN and fields["approvers"] == ["bob", "erin"]
    assert fields["deadline"].startswith("2026-11-30T13:00") and fields["deny_command"].startswith("handrail deny ")
    assert caplog.records and "/services/T000/B000/secret" not in caplog.text  # httpx logs the request line


async def test_a_refusing_webhook_fails_after_bounded_attempts_without_its_url(hook, monkeypatch):
    _Hook.status = 503
    monkeypatch.setenv("HANDRAIL_TEST_HOOK", f"http://127.0.0.1:{hook.server_port}/hooks/s3cr3t")
    channel = WebhookChannel(name="soc-chat", type="webhook", url_env="HANDRAIL_TEST_HOOK")
    with pytest.raises(channels.ChannelFailed) as failed:
        await channels.send(None, notice(), channel, NotifySettings(channels=[channel], attempts=2))
    assert len(_Hook.bodies) == 2 and "HTTP 503" in str(failed.value) and "s3cr3t" not in str(failed.value)
    monkeypatch.delenv("HANDRAIL_TEST_HOOK")
    with pytest.raises(channels.ChannelFailed, match="set HANDRAIL_TEST_HOOK"):
        await channels.send(None, notice(), channel, NotifySettings(channels=[channel], attempts=1))


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


_LOGINS: list = []


def _authenticator(server, session, envelope, mechanism, auth_data):
    _LOGINS.append((auth_data.login, auth_data.password))
    ok = auth_data.login == b"handrail" and auth_data.password == b"mail-pa55"
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server():
    inbox = _Inbox()
    with socket.socket() as probe:  # aiosmtpd's readiness check needs the real port, not 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=_authenticator,
                            auth_require_tls=False)
    controller.start()
    yield controller, inbox
    controller.stop()


async def test_smtp_mails_each_approver_with_an_address_their_own_command(smtp_server, monkeypatch):
    controller, inbox = smtp_server
    monkeypatch.setenv("HANDRAIL_TEST_SMTP_PASSWORD", "mail-pa55")
    channel = SmtpChannel(name="mail", type="smtp", host="127.0.0.1", port=controller.port, security="plain",
                          sender="handrail@corp.example", username="handrail",
                          password_env="HANDRAIL_TEST_SMTP_PASSWORD",
                          addresses={"bob": "bob@corp.example", "carol": "carol@corp.example"})
    await channels.send(None, notice(run_id="run\r\nBcc: eve@evil.example"), channel,
                        NotifySettings(channels=[channel]))
    [(to, mail)] = inbox.messages  # erin has no address; carol is not eligible
    assert to == ["bob@corp.example"] and mail["From"] == "handrail@corp.example"
    assert "waits for your approval" in mail["Subject"] and mail["Bcc"] is None  # no header injection
    assert "--as bob" in mail.get_payload() and "--as erin" not in mail.get_payload()

    assert _LOGINS == [(b"handrail", b"mail-pa55")]  # the password came from the worker's environment

@pytest.mark.parametrize("section, why", [
    ('channels = [{ name = "chat", type = "webhook", url = "https://hooks.example/T0/B0/x" }]', "url"),
    ('channels = [{ name = "chat", type = "webhook", url_env = "https://hooks.example/x" }]',
     "not an environment variable name"),
    ('channels = [{ name = "mail", type = "smtp", host = "smtp.example", sender = "h@corp.example", '
     'addresses = { mallory = "m@corp.example" } }]', "unknown user 'mallory'"),
    ('channels = [{ name = "mail", type = "smtp", host = "smtp.example", sender = "h@corp.example", '
     'username = "handrail" }]', "password_env"),
    ('channels = [{ name = "lab", type = "lab" }, { name = "lab", type = "lab" }]', "two channels"),
])
def test_policy_check_refuses_a_notify_section_that_cannot_work(tmp_path: Path, section, why):
    policy = tmp_path / "policy.toml"
    policy.write_text(with_test_keys(make_policy()) + f"\n[settings.notify]\n{section}\n")
    result = CliRunner().invoke(app, ["policy", "check", str(policy), "--json"],
                                env={"HANDRAIL_HOME": str(tmp_path / "home")})
    assert result.exit_code == 1, result.output
    error = json.loads(result.output)["error"]
    assert error.startswith("settings.notify") and why in error


async def test_a_batch_notice_names_the_count_and_first_members_not_a_hash(tmp_path):
    from types import SimpleNamespace

    from activities.notify import FIRST_MEMBERS, NotifyActivities
    from handrail.intel.normalize import parse_feed
    from handrail.intel.store import IntelStore
    from handrail.notify.message import render_text, webhook_body

    store = IntelStore(tmp_path / "store")
    lines = "".join(f"198.51.100.{i}\n" for i in range(1, 26)).encode()
    sha = store.put_set(parse_feed(lines, feed="t", format="ipset").indicators)
    batch = notice().model_copy(update={"change": Change(kind="firewall.egress_block", target=f"set:{sha}")})
    filled = await NotifyActivities(SimpleNamespace(intel=SimpleNamespace(store=store)))._with_batch(batch)
    assert filled.batch.count == 25 and len(filled.batch.first) == FIRST_MEMBERS
    text = render_text(filled, "bob")
    assert "25 entries: 198.51.100.1, " in text and "and 15 more" in text and f"show {RUN} --members" in text
    assert webhook_body(filled)["handrail"]["batch"]["count"] == 25
