"""A hostile reported message through the real phishing runbook (time-skipping server, in-process
lab): the approver's `handrail show` of the waiting step and the notice the lab's sink received
print the subject and Message-ID as written."""

from __future__ import annotations

import asyncio
import io
import re
import types

import pytest

from tests.support import running_stack
from tests.test_phishing_runbook import POLICY, awaiting, deliver, start

pytestmark = pytest.mark.workflow

RAW = (b"From: IT Desk <desk@notify-mailer.example>\r\n"
       b"To: nobody@elsewhere.example\r\n"
       b"Subject: =?utf-8?q?[link=3Dfile:///etc/passwd]Invoice[/link]_[red]APPROVED[/]_=1B[2J"
       b"=1B]8;;https://evil.example/=1B=5Cclick=1B]8;;=1B=5C_=E2=80=AEfdp.exe?=\r\n"
       b"Message-ID: <[/]x@notify-mailer.example>\r\n"
       b"Content-Type: text/plain\r\n\r\nVerify your account: http://a-lure.example/1\r\n")


async def test_show_of_a_run_on_a_hostile_message_prints_it_as_written(time_env, tmp_path, monkeypatch):
    from starter import common
    from starter.output import SafeConsole

    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await start(stack, await deliver(stack, RAW))
        status = await stack.wait_for(handle, awaiting)  # a medium verdict: the sinkhole waits for a human
        for _ in range(200):  # the notice is sent by an activity of its own
            notices = (await stack.tools.lab_notifications(handle.id))["notifications"]
            if notices:
                break
            await asyncio.sleep(0.05)
    assert "\x1b" in status.summary["subject"] and status.subject == "<[/]x@notify-mailer.example>"  # as parsed
    [text] = [n["text"] for n in notices]
    assert "(<[/]x@notify-mailer.example>)" in text and "\x1b" not in text

    console = SafeConsole(file=io.StringIO(), force_terminal=True, color_system="standard", width=400)
    monkeypatch.setattr(common, "console", console)
    monkeypatch.setattr(common, "print_url", lambda *a, **k: None)
    common._render_status(status, settings=types.SimpleNamespace(ui_url="http://ui", namespace="default"))
    out = re.sub(r"\x1b\[[0-9;]*m", "", console.file.getvalue())  # Rich's own colours
    assert "\x1b" not in out and "\u202e" not in out
    assert "subject <[/]x@notify-mailer.example>" in out  # a stray closing tag neither fails nor vanishes
    assert "subject: [link=file:///etc/passwd]Invoice[/link] [red]APPROVED[/] \\x1b[2J" in out
