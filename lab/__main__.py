"""`python -m lab`: serve the lab on settings.lab_host:settings.lab_port."""

from __future__ import annotations

import uvicorn

from handrail.ops.config import load_settings
from lab.app import create_app


def main() -> None:
    settings = load_settings()
    app = create_app(settings)
    # Access logs off: they are noise here, and the lab never logs headers or tokens.
    uvicorn.run(app, host=settings.lab_host, port=settings.lab_port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
