"""The one place Handrail reads its environment.

Every process (CLI, worker, lab, tests) builds a `Settings` from the environment so that
two stacks with different `HANDRAIL_HOME` and ports can run side by side without any of
them reading a variable behind the others' backs.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from handrail.ops.credentials import DEFAULT_LAB_ADMIN_TOKEN, DEFAULT_LAB_TOKEN  # noqa: F401 (re-exported)


def _default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): still a usable name
        return "unknown"


@dataclass(frozen=True)
class Settings:
    home: Path
    temporal_address: str
    namespace: str
    task_queue: str
    lab_url: str
    lab_token: str = field(repr=False)  # a tool credential: never in a repr or a log line
    policy_path: Path
    user: str
    ui_port: int
    tools_path: Path | None = None  # HANDRAIL_TOOLS: the `[tools]` file choosing real backends
    # `handrail lab …` only; never a tool token
    lab_admin_token: str = field(default=DEFAULT_LAB_ADMIN_TOKEN, repr=False)
    checkpoint_every: str = "5m"  # how often the worker signs a checkpoint of the audit chain
    # HANDRAIL_LEDGER_URL: "" (SQLite under home), a SQLite path, or postgresql://… (may hold a password: no repr)
    ledger_url: str = field(default="", repr=False)

    @property
    def temporal_host(self) -> str:
        return self.temporal_address.rsplit(":", 1)[0]

    @property
    def temporal_port(self) -> int:
        return int(self.temporal_address.rsplit(":", 1)[1])

    @property
    def ui_url(self) -> str:
        return f"http://{self.temporal_host}:{self.ui_port}"

    @property
    def lab_host(self) -> str:
        return urlparse(self.lab_url).hostname or "127.0.0.1"

    @property
    def lab_port(self) -> int:
        return urlparse(self.lab_url).port or 80

    @property
    def ledger_path(self) -> Path:
        """The SQLite ledger file: HANDRAIL_LEDGER_URL when it is a path, else <home>/ledger.db."""
        if self.ledger_url and not self.ledger_on_postgres:
            return Path(self.ledger_url.removeprefix("sqlite:///")).expanduser().resolve()
        return self.home / "ledger.db"

    @property
    def ledger_on_postgres(self) -> bool:
        """Ledger and intel store live in PostgreSQL, shared by every worker (scale-out)."""
        return self.ledger_url.startswith(("postgresql://", "postgres://"))

    @property
    def lab_db_path(self) -> Path:
        return self.home / "lab.db"

    @property
    def temporal_db_path(self) -> Path:
        return self.home / "temporal.db"

    @property
    def store_dir(self) -> Path:
        """Content-addressed storage for big artefacts (feeds, messages) passed by reference."""
        return self.home / "store"

def _policy_path(env: dict[str, str], home: Path) -> Path:
    """HANDRAIL_POLICY, else the policy the stack under `home` runs on (`handrail demo` starts
    its stack on a demo policy listing the demo keys: a command typed next must sign and judge
    against the policy the worker enforces), else ./policy.toml, else the one shipped here."""
    if env.get("HANDRAIL_POLICY"):
        return Path(env["HANDRAIL_POLICY"]).expanduser().resolve()
    running = _stack_policy(home)
    if running is not None:
        return running
    local = Path("policy.toml").resolve()
    if local.exists():
        return local
    return Path(__file__).resolve().parents[1] / "policy.toml"


def _stack_policy(home: Path) -> Path | None:
    """The policy recorded in `<home>/stack.json` by `handrail up`, if it still exists."""
    try:
        recorded = json.loads((home / "stack.json").read_text(encoding="utf-8")).get("policy")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(recorded, str) or not recorded:
        return None
    path = Path(recorded)
    return path if path.is_file() else None


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(env.get("HANDRAIL_HOME", "./.handrail")).expanduser().resolve()
    address = env.get("HANDRAIL_TEMPORAL_ADDRESS", "127.0.0.1:7233")
    port = int(address.rsplit(":", 1)[1]) if ":" in address else 7233
    return Settings(
        home=home,
        temporal_address=address,
        namespace=env.get("HANDRAIL_NAMESPACE", "default"),
        task_queue=env.get("HANDRAIL_TASK_QUEUE", "handrail"),
        lab_url=env.get("HANDRAIL_LAB_URL", "http://127.0.0.1:8787").rstrip("/"),
        lab_token=env.get("HANDRAIL_LAB_TOKEN", DEFAULT_LAB_TOKEN),
        policy_path=_policy_path(env, home),
        user=env.get("HANDRAIL_USER") or _default_user(),
        ui_port=int(env.get("HANDRAIL_UI_PORT", str(port + 1000))),
        tools_path=Path(env["HANDRAIL_TOOLS"]).expanduser().resolve() if env.get("HANDRAIL_TOOLS") else None,
        lab_admin_token=env.get("HANDRAIL_LAB_ADMIN_TOKEN", DEFAULT_LAB_ADMIN_TOKEN),
        checkpoint_every=env.get("HANDRAIL_CHECKPOINT_EVERY", "5m"),
        ledger_url=env.get("HANDRAIL_LEDGER_URL", "").strip(),
    )
