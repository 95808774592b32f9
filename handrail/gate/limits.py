"""Length and character limits for every field a trigger carries, with clear errors.

Triggers come from people (the CLI), schedules and pollers that read hostile systems. A
field without a bound is a way to put megabytes into workflow history, the audit and every
alert, or control characters into a terminal. Each kind of field has one type here; the
trigger models annotate their fields with them, so the limit travels with the model and
a violation is one sentence (:func:`explain`).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, ValidationError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # and bidi overrides


def _bounded(max_len: int, pattern: str | None, what: str, *, allow_empty: bool = False):
    allowed = re.compile(pattern) if pattern else None

    def check(value: str) -> str:
        if not value and not allow_empty:
            raise ValueError("must not be empty")
        if len(value) > max_len:
            raise ValueError(f"must be at most {max_len} characters, not {len(value)}")
        if _CONTROL.search(value):
            raise ValueError("must not contain control characters or line breaks")
        if allowed is not None and value and not allowed.fullmatch(value):
            raise ValueError(f"may contain only {what}")
        return value

    return AfterValidator(check)


# who asked: a user name or a poller name
Principal = Annotated[str, _bounded(64, r"[A-Za-z0-9][A-Za-z0-9._@+-]*",
                                    "letters, digits and . _ @ + - (starting with a letter or digit)")]
# an id a tool reported (DLP-1, IAM-EVT-7, a MAC): bounded and printable only, so that a
# malformed one still starts a run that the runbook rejects *on the record* with its reason
ToolId = Annotated[str, _bounded(128, None, "")]
# an id Handrail or a person typed (run ids)
Identifier = Annotated[str, _bounded(128, r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]*",
                                     "letters, digits and . _ : @ / + = -")]
OptionalIdentifier = Annotated[str, _bounded(128, r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]*",
                                             "letters, digits and . _ : @ / + = -", allow_empty=True)]
# free text a human wrote: one line
Reason = Annotated[str, _bounded(500, None, "", allow_empty=True)]
# a Message-ID header as a mailbox reports it (RFC 5322 caps a line at 998 characters)
HeaderValue = Annotated[str, _bounded(998, None, "", allow_empty=True)]
# a SHA-256 in hex, or nothing when a backend reports none
Sha256Hex = Annotated[str, _bounded(64, r"[0-9a-fA-F]{64}", "64 hexadecimal digits", allow_empty=True)]
# an address or network as typed (the gate parses it, and fails closed)
AddressText = Annotated[str, _bounded(64, r"[0-9A-Fa-f.:/]+", "an IPv4 or IPv6 address or network")]
# a host name or a MAC address
HostName = Annotated[str, _bounded(253, r"[A-Za-z0-9][A-Za-z0-9._-]*", "letters, digits and . _ -")]
# an indicator (hash, domain, URL) carried along
Indicator = Annotated[str, _bounded(2048, None, "")]


def clip_header(value: str, max_len: int = 998) -> str:
    """An attacker-written header made fit for a trigger: control characters become spaces,
    the rest is cut at ``max_len``. For values that are information, never keys."""
    return _CONTROL.sub(" ", value)[:max_len]


def explain(exc: ValidationError) -> str:
    """The first problem of a validation error as one sentence: ``reason must be ...``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "the input"
    message = str(first.get("msg", "is invalid")).removeprefix("Value error, ")
    if first.get("type") == "missing":
        message = "is required"
    more = len(exc.errors()) - 1
    return f"{where} {message}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "") + "."
