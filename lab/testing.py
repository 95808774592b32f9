"""Run the lab in-process for tests: a fresh, seeded estate per test in milliseconds.

    async with in_process_lab(tmp_path) as lab:
        await lab.tools.firewall.egress_list()

The first call seeds a template database once per process; later calls copy it, so a
test pays for a file copy instead of a seed.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from handrail.ops.config import Settings, load_settings
from handrail.tools import ToolClients
from lab.app import create_app
from lab.seed import fixtures_dir
from lab.store import Store

_templates: dict[str, Path] = {}


def _template() -> Path:
    key = str(fixtures_dir())
    if key not in _templates or not _templates[key].exists():
        folder = tempfile.mkdtemp(prefix="handrail-lab-template-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = Path(folder) / "lab.db"
        store = Store(path)
        from lab.registry import seed_all

        seed_all(store)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        _templates[key] = path
    return _templates[key]


def lab_settings(home: Path, **env: str) -> Settings:
    return load_settings({"HANDRAIL_HOME": str(home), **env})


def prepare(settings: Settings) -> None:
    """Put a freshly seeded estate at settings.lab_db_path unless one is already there."""
    target = settings.lab_db_path
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_template(), target)


@dataclass
class InProcessLab:
    app: FastAPI
    tools: ToolClients
    settings: Settings

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        """A raw client (for contract tests below the typed clients); token None = none."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(self.app),
                                 base_url=self.settings.lab_url, headers=headers)


@asynccontextmanager
async def in_process_lab(home: Path, **env: str) -> AsyncIterator[InProcessLab]:
    settings = lab_settings(home, **env)
    prepare(settings)
    app = create_app(settings)
    tools = ToolClients.from_settings(settings, transport=httpx.ASGITransport(app))
    try:
        yield InProcessLab(app, tools, settings)
    finally:
        await tools.aclose()
        app.state.store.close()
