"""structlog JSON logs, with secrets removed before anything is rendered.

Libraries log through the standard `logging` module instead (httpx writes every request's
URL at INFO, user info and query included): its handlers get the same redaction."""

from __future__ import annotations

import logging
import os
import sys

import structlog

from handrail.gate.redact import redact_processor, redact_text

_configured = False


class RedactFilter(logging.Filter):
    """A handler filter: the record's message with every detected secret replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def configure(level: str | None = None) -> None:
    global _configured
    if _configured:
        return
    level = level or os.environ.get("HANDRAIL_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactFilter) for f in handler.filters):
            handler.addFilter(RedactFilter())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_processor,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = True


def get_logger(**bound):
    """A logger bound to run/step ids; logging goes to stderr as JSON even if nobody configured it."""
    configure()
    return structlog.get_logger("handrail").bind(**bound)
