"""`handrail run phishing`: start the phishing response for one reported message by hand.

    handrail run phishing --message-id MSG-000012          a message already in the mailbox
    handrail run phishing --message-id '<abc@mail.example>' (its mailbox id or Message-ID)
    handrail run phishing --eml suspicious.eml [--wait]    post the file to the mailbox first

The run id is `phishing-<hash of Message-ID>`, the same one the mailbox poller uses, so a
message is never handled twice whichever way it came in. Once the run exists the message
is marked processed, as the poller would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from handrail.runbooks.phishing.rules import PhishingTrigger, normalise_message_id, phishing_run_id
from handrail.tools import ToolClients
from handrail.tools.errors import Conflict, Invalid, NotFound, ToolError, Unavailable
from starter.output import USAGE, command, fail


async def find_message(tools: ToolClients, wanted: str):
    """A mailbox message by its mailbox id (MSG-…) or by its Message-ID header."""
    try:
        return await tools.mailbox.get_message(wanted.strip())
    except NotFound:
        pass
    key = normalise_message_id(wanted)
    for message in await tools.mailbox.list_messages():
        if normalise_message_id(message.message_id) == key:
            return message
    fail(f"There is no message {wanted} in the phishing mailbox (`handrail lab list mailbox` lists them).")


def eml_problem(raw: bytes) -> str | None:
    """Why the runbook would reject this file (parsed here, offline, before it reaches the mailbox)."""
    from handrail.runbooks.phishing.mail import MalformedMessage, parse_message

    if not raw.strip():
        return "is empty"
    try:
        parse_message(raw)
    except MalformedMessage as exc:
        return f"is not a message the runbook can handle ({exc.reason})"
    return None


async def start_phishing(client, settings, tools: ToolClients, *, message_id: str | None, eml: Path | None,
                         requested_by: str):
    if bool(message_id) == bool(eml):
        fail("Give exactly one of --message-id ID or --eml FILE.", USAGE)
    try:
        if eml is not None:
            try:
                raw = Path(eml).read_bytes()
            except OSError as exc:
                fail(f"--eml {eml} cannot be read ({exc.strerror or exc}).", USAGE)
            problem = eml_problem(raw)
            if problem:
                fail(f"--eml {eml} {problem}; nothing was posted to the mailbox.")
            try:
                delivered = await tools.mailbox.deliver(raw)
            except Invalid as exc:
                fail(f"The mailbox refused {eml}: {exc}")
            mailbox_id, header_id = delivered.id, delivered.message_id
        else:
            message = await find_message(tools, message_id)
            mailbox_id, header_id = message.id, message.message_id
    except Unavailable:
        fail(f"The lab at {tools.base_url} is not answering; start it with `handrail up`.")
    run_id = phishing_run_id(header_id)
    from workflows.phishing import PhishingResponse

    try:
        handle = await client.start_workflow(
            PhishingResponse.run,
            PhishingTrigger(mailbox_id=mailbox_id, message_id=header_id, requested_by=requested_by),
            id=run_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        fail(f"This message already ran as {run_id} (`handrail show {run_id}`).")
    try:
        await tools.mailbox.mark_processed(mailbox_id)
    except (Conflict, NotFound):
        pass
    except ToolError:
        pass  # the poller marks it on its next pass: the run exists, so nothing is lost
    return handle


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    @run_app.command("phishing")
    @command
    async def run_phishing(
        message_id: Optional[str] = typer.Option(
            None, "--message-id", help="The message's mailbox id (MSG-000012) or its Message-ID header."),
        eml: Optional[Path] = typer.Option(None, "--eml", help="An .eml file: posted to the phishing mailbox first."),
        requested_by: Optional[str] = typer.Option(None, "--requested-by", help="Requester (default HANDRAIL_USER)."),
        wait: bool = typer.Option(False, "--wait", help="Wait for the run's outcome and print it."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    ):
        """Respond to a reported phishing message: sinkhole, watch, take down, attach to incident response."""
        from starter.cli import _client, _settings, _started

        if bool(message_id) == bool(eml):
            fail("Give exactly one of --message-id ID or --eml FILE.", USAGE)
        if eml is not None and not Path(eml).is_file():
            fail(f"--eml {eml} is not a file.", USAGE)
        settings = _settings()
        client = await _client(settings)
        async with ToolClients.from_settings(settings) as tools:
            handle = await start_phishing(client, settings, tools, message_id=message_id, eml=eml,
                                          requested_by=requested_by or settings.user)
        await _started(client, settings, handle, wait, as_json)
