"""The production shape in docker-compose.yml: what operators rely on when they `docker compose up`.

There is no Docker here, so the file is read (with a strict subset reader, the same answer as
PyYAML on this file) and its shape is checked: Temporal on PostgreSQL, the UI, a ledger
database, the lab and three stateless workers that share nothing but Temporal and the ledger.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from handrail.ops.config import load_settings
from tests.yaml_subset import load

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _interpolate(value: str) -> str:
    """What compose makes of ${VAR:-default} with nothing set in the environment."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load((ROOT / "docker-compose.yml").read_text())


def _workers(services: dict) -> dict[str, dict]:
    return {name: s for name, s in services.items() if s.get("command") == ["python", "-m", "worker"]}


def test_three_workers_share_one_ledger_database_and_nothing_else(compose):
    services = compose["services"]
    workers = _workers(services)
    replicas = sum(int(w.get("deploy", {}).get("replicas", 1)) for w in workers.values())
    assert replicas == 3
    urls = {w["environment"]["HANDRAIL_LEDGER_URL"] for w in workers.values()}
    assert len(urls) == 1
    url = _interpolate(urls.pop())
    settings = load_settings({"HANDRAIL_LEDGER_URL": url})
    assert settings.ledger_on_postgres
    parts = urlsplit(url)
    ledger_db = services[parts.hostname]
    assert ledger_db["image"].startswith("postgres:")
    env = {k: _interpolate(str(v)) for k, v in ledger_db["environment"].items()}
    assert (parts.username, parts.password, parts.path.lstrip("/")) == (
        env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"])
    for name, w in workers.items():
        assert w["depends_on"][parts.hostname]["condition"] == "service_healthy", name
        assert w["environment"]["HANDRAIL_TEMPORAL_ADDRESS"] == "temporal:7233"
    homes = [tuple(w.get("volumes", [])) for w in workers.values()]
    assert len(set(homes)) == len(homes), "each worker keeps its own HANDRAIL_HOME"


def test_secrets_come_from_the_environment(compose):
    for name, w in _workers(compose["services"]).items():
        env = w["environment"]
        assert env["HANDRAIL_PAYLOAD_KEY"].startswith("${HANDRAIL_PAYLOAD_KEY"), name
        assert "${HANDRAIL_LEDGER_PASSWORD" in env["HANDRAIL_LEDGER_URL"]
        assert env["HANDRAIL_LAB_TOKEN"].startswith("${HANDRAIL_LAB_TOKEN")


def test_temporal_runs_on_postgresql_with_its_ui(compose):
    services = compose["services"]
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/auto-setup:")
    assert temporal["environment"]["DB"] == "postgres12"
    assert services[temporal["environment"]["POSTGRES_SEEDS"]]["image"].startswith("postgres:")
    assert services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert services["temporal-setup"]["entrypoint"].count("HandrailRequestedBy") == 2  # created, or already there
    assert services["lab"]["command"] == ["python", "-m", "lab"]


def test_every_named_volume_is_declared_and_the_image_can_reach_postgresql(compose):
    declared = set(compose["volumes"])
    used = {v.split(":", 1)[0] for s in compose["services"].values() for v in s.get("volumes", [])}
    assert used <= declared
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.replace(" ", "").startswith("psycopg[") and "pool" in d for d in deps)


@pytest.mark.parametrize("text", ["a:\n  - b: c\n", "a: {b: c}\n", "a: *nowhere\n", "a: 1\na: 2\n",
                                  "a:\n    b: 1\n  c: 2\n"])
def test_the_reader_refuses_yaml_it_would_misread(text):
    with pytest.raises(ValueError, match="line|unsupported"):
        load(text)
