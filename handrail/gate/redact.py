"""Keep secrets out of logs, the audit and workflow history.

Anything that looks like a credential is replaced before it is written anywhere durable.
Both the structlog processor and the ledger call `redact`, so there is one rule.
"""

from __future__ import annotations

import re
from typing import Any

SECRET_KEYS = re.compile(r"(token|password|passwd|secret|authorization|api[_-]?key|cookie|credential)", re.I)
BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and SECRET_KEYS.search(k) else redact(v)) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return BEARER.sub("Bearer " + REDACTED, value)
    return value


def redact_processor(_logger, _name, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the last step before rendering."""
    return redact(event_dict)
