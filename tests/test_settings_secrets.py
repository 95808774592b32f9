"""Settings reach log lines and tracebacks as reprs: the credentials they carry must not."""

from __future__ import annotations

import pytest

from handrail.ops.config import load_settings

pytestmark = pytest.mark.unit


def test_settings_repr_shows_no_token_and_no_database_password():
    settings = load_settings({"HANDRAIL_LEDGER_URL": "postgresql://handrail:s3cret-pw@db.internal/ledger",
                              "HANDRAIL_LAB_TOKEN": "tool-token-123", "HANDRAIL_LAB_ADMIN_TOKEN": "admin-456"})
    text = repr(settings)
    assert settings.ledger_on_postgres and settings.lab_token == "tool-token-123"
    for secret in ("s3cret-pw", "tool-token-123", "admin-456"):
        assert secret not in text
    assert "task_queue=" in text  # the rest is still there to read
