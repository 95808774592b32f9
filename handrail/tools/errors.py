"""Errors every tool client raises, whatever the vendor behind it.

Activities decide what to do from the type and `.retryable` alone: `Unavailable` (5xx,
timeouts, connection failures) is worth retrying; every 4xx is a definite answer that a
retry would only repeat. Messages are one sentence and never contain credentials.
"""

from __future__ import annotations


class ToolError(Exception):
    """A tool refused or failed a request."""

    retryable: bool = False
    default_code: str = "error"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code or self.default_code
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # keep status/code/retryable through pickling
        return (_rebuild, (type(self), self.message, self.status, self.code, self.retryable))


def _rebuild(cls, message, status, code, retryable):
    return cls(message, status=status, code=code, retryable=retryable)


class NotFound(ToolError):
    """404: the host, user, entry or object does not exist."""

    default_code = "not_found"


class Conflict(ToolError):
    """409: the request conflicts with the current state (already present, not a member...)."""

    default_code = "conflict"


class Invalid(ToolError):
    """400/422: the request itself is malformed."""

    default_code = "invalid_input"


class Unauthorized(ToolError):
    """401/403: the credentials were missing, wrong or insufficient."""

    default_code = "unauthorized"


class Unavailable(ToolError):
    """5xx, timeout or connection failure: the tool may answer if asked again."""

    retryable = True
    default_code = "unavailable"
