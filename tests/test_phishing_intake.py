"""`handrail run phishing` without a tool token: the worker's PhishingIntake finds or delivers the message."""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationErrorCategory

from activities.phishing_intake import IntakeRequest
from handrail.runbooks.phishing.rules import phishing_run_id
from tests.support import running_stack
from workflows.phishing_intake import PhishingIntake

pytestmark = pytest.mark.workflow

POLICY = (Path(__file__).resolve().parents[1] / "policy.toml").read_text()


async def intake(stack, request: IntakeRequest):
    handle = await stack.start(PhishingIntake.run, request, id=f"intake-{uuid.uuid4().hex[:8]}")
    return await handle.result()


async def test_intake_finds_the_message_by_either_id_and_keys_the_run_by_its_content(time_env, tmp_path):
    """The worker finds the message (the CLI holds no tool token) and hands back the trigger the
    CLI then starts, signed by the person who asks; the same message always gets the same run."""
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        raw = b"Message-ID: <reported-1@mail.example>\r\nSubject: hi\r\nFrom: a@b.example\r\n\r\nbody\r\n"
        message = await stack.tools.mailbox.deliver(raw)  # reported by a user, waiting in the mailbox
        report = await intake(stack, IntakeRequest(message_id=message.message_id, requested_by="alice"))
        entry = await stack.tools.mailbox.get_message(message.id)
        assert report.run_id == phishing_run_id(entry.sha256, entry.id, entry.message_id)
        assert report.trigger.sha256 == hashlib.sha256(raw).hexdigest() and report.trigger.mailbox_id == message.id
        again = await intake(stack, IntakeRequest(message_id=message.id, requested_by="alice"))
        assert again.run_id == report.run_id


async def test_intake_delivers_an_eml_and_refuses_unknown_ids_in_one_sentence(time_env, tmp_path, caplog):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        raw = b"Message-ID: <intake-1@mail.example>\r\nSubject: hi\r\nFrom: a@b.example\r\n\r\nbody\r\n"
        report = await intake(stack, IntakeRequest(eml_b64=base64.b64encode(raw).decode(), requested_by="alice"))
        [entry] = [m for m in await stack.tools.mailbox.list_messages() if m.message_id == "<intake-1@mail.example>"]
        assert report.run_id == phishing_run_id(hashlib.sha256(raw).hexdigest(), entry.id)
        with pytest.raises(WorkflowFailureError) as failure:
            await intake(stack, IntakeRequest(message_id="<nobody@nowhere.example>", requested_by="alice"))
        refusal = failure.value.cause.cause
        assert "There is no message <nobody@nowhere.example> in the phishing mailbox" in str(refusal)
        assert "`handrail lab list mailbox` lists them" in str(refusal)  # as the DLP, IAM and NAC refusals say
        # a refused input is the person's to fix, not the operator's: no traceback in the worker log
        assert refusal.category == ApplicationErrorCategory.BENIGN
        assert not [r for r in caplog.records
                    if r.levelno >= logging.WARNING and r.getMessage().startswith("Completing activity as failed")]
