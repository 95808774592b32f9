"""How a tool's error reaches Temporal from any activity: one rule for every area."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from handrail.tools.errors import ToolError


def tool_failure(exc: ToolError, what: str) -> ApplicationError:
    """Retryable tool errors (5xx, timeouts) go back to the retry policy; the rest end the step."""
    return ApplicationError(f"{what}: {exc}", type=type(exc).__name__, non_retryable=not exc.retryable)
