"""`handrail run phishing`'s mailbox work, done by the worker rather than the CLI.

The CLI holds no tool credential: finding a message by its Message-ID, or posting an
.eml file to the phishing mailbox, happens here, in an activity, with the worker's
tool clients. Errors come back as one non-retryable sentence for the CLI to print.
"""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.context import WorkerContext
from activities.errors import tool_failure
from handrail.gate.limits import clip_header
from handrail.runbooks.phishing.rules import PhishingTrigger, normalise_message_id
from handrail.tools.errors import Invalid, NotFound, ToolError

MAX_EML_BYTES = 1024 * 1024  # a reported message travels in the intake's history: keep it small


class IntakeRequest(BaseModel):
    message_id: str | None = None  # a mailbox id (MSG-…) or a Message-ID header
    eml_b64: str | None = None  # an .eml file to post to the mailbox first
    eml_name: str = "the message"
    requested_by: str


def _refuse(message: str) -> ApplicationError:
    """A refusal of the input (no such message, not an e-mail): the person is told, and the
    worker log gets no traceback for it (BENIGN: logged at DEBUG, no failure metric)."""
    return ApplicationError(message, type="IntakeRefused", non_retryable=True,
                            category=ApplicationErrorCategory.BENIGN)


class PhishingIntakeActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.tools = ctx.tools

    @activity.defn
    async def phishing_intake(self, request: IntakeRequest) -> PhishingTrigger:
        """The trigger for a reported message: found in the mailbox, or delivered there first."""
        if bool(request.message_id) == bool(request.eml_b64):
            raise _refuse("Give exactly one of a message id or an .eml file.")
        try:
            if request.eml_b64:
                try:
                    raw = base64.b64decode(request.eml_b64, validate=True)
                except (binascii.Error, ValueError):
                    raise _refuse(f"{request.eml_name} did not arrive intact.") from None
                if len(raw) > MAX_EML_BYTES:
                    raise _refuse(f"{request.eml_name} is larger than {MAX_EML_BYTES // 1024} KiB.")
                try:
                    delivered = await self.tools.mailbox.deliver(raw)
                except Invalid as exc:
                    raise _refuse(f"The mailbox refused {request.eml_name}: {exc}") from None
                message = await self.tools.mailbox.get_message(delivered.id)  # the entry kept (may be older)
            else:
                message = await self._find(request.message_id or "")
            return PhishingTrigger(mailbox_id=message.id, message_id=clip_header(message.message_id),
                                   sha256=message.sha256, requested_by=request.requested_by)
        except ToolError as exc:
            raise tool_failure(exc, "reaching the phishing mailbox failed") from None

    async def _find(self, wanted: str):
        try:
            return await self.tools.mailbox.get_message(wanted.strip())
        except (NotFound, Invalid):
            pass
        key = normalise_message_id(wanted)
        for message in await self.tools.mailbox.list_messages():
            if normalise_message_id(message.message_id) == key:
                return message
        raise _refuse(f"There is no message {wanted} in the phishing mailbox (`handrail lab list mailbox` lists them).")
