"""`handrail run phishing`: start the phishing response for one reported message by hand.

    handrail run phishing --message-id MSG-000012          a message already in the mailbox
    handrail run phishing --message-id '<abc@mail.example>' (its mailbox id or Message-ID)
    handrail run phishing --eml suspicious.eml [--wait]    post the file to the mailbox first

The run id is `phishing-<hash of the message's content hash and mailbox entry>` (never the
attacker-chosen Message-ID alone), the same one the mailbox poller uses, so a message is
never handled twice whichever way it came in. The mailbox work happens in the worker (the
`PhishingIntake` workflow): the CLI holds no tool token; the run itself is started by the
CLI, signed by the person who asks. The poller marks the message processed on its next pass.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Optional

import typer

from starter.output import USAGE, command, fail


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


async def start_phishing(client, settings, *, message_id: str | None, eml: Path | None, requested_by: str | None):
    """Ask the worker to find (or deliver) the message, then start its run signed by the
    person who asks; the CLI holds no tool token."""
    from temporalio.client import WorkflowFailureError

    from activities.phishing_intake import MAX_EML_BYTES, IntakeRequest
    from handrail.runbooks.phishing.rules import RUNBOOK
    from workflows.phishing_intake import IntakeReport, PhishingIntake

    if bool(message_id) == bool(eml):
        fail("Give exactly one of --message-id ID or --eml FILE.", USAGE)
    request = IntakeRequest(message_id=message_id, requested_by=requested_by or settings.user)
    if eml is not None:
        try:
            raw = Path(eml).read_bytes()
        except OSError as exc:
            fail(f"--eml {eml} cannot be read ({exc.strerror or exc}).", USAGE)
        problem = eml_problem(raw)
        if problem:
            fail(f"--eml {eml} {problem}; nothing was posted to the mailbox.")
        if len(raw) > MAX_EML_BYTES:
            fail(f"--eml {eml} is larger than {MAX_EML_BYTES // 1024} KiB.", USAGE)
        request = IntakeRequest(eml_b64=base64.b64encode(raw).decode(), eml_name=str(eml),
                                requested_by=requested_by or settings.user)
    try:
        report = await client.execute_workflow(
            PhishingIntake.run, request, id=f"phishing-intake-{uuid.uuid4().hex[:12]}",
            task_queue=settings.task_queue, result_type=IntakeReport)
    except WorkflowFailureError as exc:
        cause = exc.cause
        while getattr(cause, "cause", None) is not None:
            cause = cause.cause
        fail(str(getattr(cause, "message", None) or cause or exc))
    from starter.start import start_run
    from workflows.phishing import PhishingResponse

    return await start_run(
        client, settings, PhishingResponse.run,
        lambda who: report.trigger.model_copy(update={"requested_by": who}), report.run_id,
        requested_by=requested_by, runbook=RUNBOOK,
        duplicate="This message already ran as {run_id} (`handrail show {run_id}`).",
    )


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    @run_app.command("phishing")
    @command
    async def run_phishing(
        message_id: Optional[str] = typer.Option(
            None, "--message-id", help="The message's mailbox id (MSG-000012) or its Message-ID header."),
        eml: Optional[Path] = typer.Option(None, "--eml", help="An .eml file: posted to the phishing mailbox first."),
        requested_by: Optional[str] = typer.Option(
            None, "--requested-by",
            help="Check that the signing key (HANDRAIL_SIGNING_KEY or HANDRAIL_HOME/keys/USER_ed25519) "
                 "is this requester's; the request is signed."),
        wait: bool = typer.Option(False, "--wait", help="Wait for the run's outcome and print it."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    ):
        """Respond to a reported phishing message: sinkhole, watch, take down, attach to incident response."""
        from starter.common import _client, _settings, _started

        if bool(message_id) == bool(eml):
            fail("Give exactly one of --message-id ID or --eml FILE.", USAGE)
        if eml is not None and not Path(eml).is_file():
            fail(f"--eml {eml} is not a file.", USAGE)
        settings = _settings()
        client = await _client(settings)
        handle = await start_phishing(client, settings, message_id=message_id, eml=eml, requested_by=requested_by)
        await _started(client, settings, handle, wait, as_json)
