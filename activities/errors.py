"""How a failure reaches Temporal from any activity: one rule per kind of failure."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from handrail.tools.errors import ToolError


def tool_failure(exc: ToolError, what: str) -> ApplicationError:
    """Retryable tool errors (5xx, timeouts) go back to the retry policy; the rest end the step."""
    return ApplicationError(f"{what}: {exc}", type=type(exc).__name__, non_retryable=not exc.retryable)


def policy_failure(exc: Exception) -> ApplicationError:
    """A policy (or a runbook's settings table) that does not validate ends the step at once:
    retrying cannot fix a file, and the message is the one `handrail policy check` prints."""
    return ApplicationError(str(exc), type="PolicyError", non_retryable=True)
