"""`python -m lab`: serve the lab on settings.lab_host:settings.lab_port."""

from __future__ import annotations

import uvicorn

from handrail.ops.config import load_settings
from handrail.ops.credentials import CredentialError, check_lab_tokens
from lab.app import create_app


def main() -> None:
    settings = load_settings()
    try:  # a lab reachable from other hosts never runs with a token everyone knows
        check_lab_tokens(settings.lab_token, settings.lab_admin_token, settings.lab_host)
    except CredentialError as exc:
        raise SystemExit(f"lab: {exc}") from None
    app = create_app(settings)
    # Access logs off: they are noise here, and the lab never logs headers or tokens. uvicorn
    # picks httptools (a dependency) by itself. Not uvloop: its listening socket left the port
    # unusable for a restarted lab after a SIGKILL (tests/test_stack_partial.py).
    uvicorn.run(app, host=settings.lab_host, port=settings.lab_port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
