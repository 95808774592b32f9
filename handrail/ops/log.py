"""structlog JSON logs, with secrets removed before anything is rendered."""

from __future__ import annotations

import logging
import os
import sys

import structlog

from handrail.gate.redact import redact_processor

_configured = False


def configure(level: str | None = None) -> None:
    global _configured
    if _configured:
        return
    level = level or os.environ.get("HANDRAIL_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
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
