"""`handrail bench runbooks`: what the step gate costs, measured against the cheapest workflow.

The set-up is the production shape on one machine: an embedded Temporal dev server (SQLite,
WAL pragmas), the lab in a process of its own (real tools are remote, so their CPU is not
the worker's), and one worker process (this one, which also starts the runs) hosting both:

- gated: egress-block runs through the whole gate (policy `guarded`, lab over HTTP, ledger
  on disk);
- bare: `starter.bare_workflow.BenchBare`, one no-op activity in a module importing only
  `temporalio`, the yardstick that pays nothing it need not.

Batches alternate (bare, gated, bare, gated, ...) after a short warm-up, so a noisy
neighbour on a shared machine hits both sides alike. Reported per variant: runs/s, p50/p99
latency, CPU milliseconds per run split by process (worker, server, lab), the worker's
event-loop lag, and the size of one run's history. `ratio_to_bare` is the number to watch.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment

from handrail.gate.ledger import open_ledger
from handrail.gate.models import EgressBlockTrigger
from handrail.gate.policy import default_policy_path
from handrail.gate.search import SEARCH_ATTRIBUTES
from handrail.ops.codec import data_converter
from handrail.ops.config import load_settings
from handrail.ops.log import configure
from handrail.ops.ports import free_port
from handrail.ops.stack import child_env, temporal_binary
from handrail.tools import ToolClients
from handrail.trust.advice import edit_mode_text
from starter.bare_workflow import BenchBare, bench_noop
from workflows.egress_block import RUNBOOK as EGRESS_BLOCK
from workflows.egress_block import EgressBlock
from workflows.gate import start_attributes

WARM_UP_RUNS = 5
LAG_TICK_S = 0.01


@contextmanager
def stdout_to_stderr():
    """Child processes started inside inherit stderr as their stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _bench_ip(i: int) -> str:
    """Distinct public addresses outside every protected and reserved range."""
    return f"45.{(i // 65025) % 200}.{(i // 255) % 255}.{i % 255 + 1}"



def _guarded_policy(home: Path, requester_key: str = "") -> Path:
    """The shipped policy with egress blocks automated and no hourly cap (200 at once is the point);
    the `bench` user's key signs each run's request, as `handrail run` does."""
    text = edit_mode_text(default_policy_path().read_text(), "firewall.egress_block", "guarded")
    if requester_key:
        text = text.replace("[users]\n", f'[users]\nbench = {{ roles = [], keys = ["{requester_key}"] }}\n', 1)
    path = home / "policy.toml"
    path.write_text(text.replace("per_hour = 500", "per_hour = 1000000"))
    return path


def _signed_request(key, run_id: str, trigger) -> dict:
    from handrail.gate import requests, signatures, signing

    document = signing.new_request("EgressBlock", run_id, trigger, "bench")
    armored = signatures.sign(key, document.canonical().encode(), signatures.REQUEST_NAMESPACE)
    return {requests.REQUEST_MEMO: requests.request_memo(document, armored)}


def bench_signatures(rounds: int = 2000) -> dict:
    """Microseconds to verify one signed decision, per key kind (the workflow does this per decision)."""
    from datetime import datetime, timezone

    from cryptography.hazmat.primitives.asymmetric import ec

    from handrail.gate import decisions, signatures, signing
    from handrail.gate.models import Change, Decision, Mode, StepRecord

    step = StepRecord(step_id="s01-firewall.egress_block", change=Change(kind="firewall.egress_block",
                      target="203.0.113.7"), mode=Mode.APPROVE)
    result: dict = {"rounds": rounds}
    for name, key in (("ssh-ed25519", signatures.new_ed25519_key()),
                      ("ecdsa-sha2-nistp256", ec.generate_private_key(ec.SECP256R1())),
                      ("ecdsa-sha2-nistp384", ec.generate_private_key(ec.SECP384R1()))):
        keys = {"bob": [signatures.public_key_of(key).line()]}
        document = signing.new_document(run_id="r", step=step, signer="bob", approve=True,
                                          issued_at=datetime.now(timezone.utc))
        signed: Decision = signing.sign_decision(key, document)
        began = time.perf_counter()
        for _ in range(rounds):
            doc = decisions.read_document(signed)
            decisions.verify_signer(signed, doc, keys)
        result[f"{name}_verify_us"] = round((time.perf_counter() - began) / rounds * 1e6, 1)
    return result


# -- measuring ----------------------------------------------------------------------------
def _process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), from /proc; None if unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _temporal_child() -> int | None:
    """The dev server the SDK started as a child of this process (Linux /proc), if found."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == me and b"start-dev" in cmdline:
            return int(entry.name)
    return None


class CpuMeter:
    """CPU seconds used by the worker (this process), the Temporal server and the lab."""

    def __init__(self, server_pid: int | None, lab_pid: int):
        self.pids = {"server": server_pid, "lab": lab_pid}

    def read(self) -> dict[str, float | None]:
        now = {"worker": time.process_time()}
        for name, pid in self.pids.items():
            now[name] = _process_cpu(pid) if pid else None
        return now


class LoopLag:
    """How late a 10 ms sleep wakes up on the worker's event loop: blocking calls show here."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task | None = None

    async def _tick(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(LAG_TICK_S)
            self.samples.append(time.perf_counter() - began - LAG_TICK_S)

    def __enter__(self) -> "LoopLag":
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc) -> None:
        assert self._task is not None
        self._task.cancel()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Variant:
    """What one kind of run (gated or bare) adds up to across its batches."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.wall = 0.0
        self.cpu: dict[str, float | None] = {}
        self.lag: list[float] = []

    def add_cpu(self, used: dict[str, float | None]) -> None:
        for name, value in used.items():
            if value is None or self.cpu.get(name, 0.0) is None:
                self.cpu[name] = None
            else:
                self.cpu[name] = self.cpu.get(name, 0.0) + value

    def summary(self) -> dict:
        runs = len(self.latencies)
        return {
            "runs_per_second": round(runs / self.wall, 2),
            "p50_seconds": round(statistics.median(self.latencies), 3),
            "p99_seconds": round(_percentile(self.latencies, 0.99), 3),
            "cpu_ms_per_run": {k: None if v is None else round(v * 1000 / runs, 2) for k, v in self.cpu.items()},
            "loop_lag_ms": {
                "p50": round(statistics.median(self.lag) * 1000, 2) if self.lag else None,
                "p99": round(_percentile(self.lag, 0.99) * 1000, 2) if self.lag else None,
                "max": round(max(self.lag) * 1000, 2) if self.lag else None,
            },
        }


async def _batch(starts, variant: Variant, meter: CpuMeter) -> None:
    """Start every run at once and wait for all; add latencies, wall time, CPU and lag."""

    async def one(start):
        began = time.perf_counter()
        handle = await start()
        await handle.result()
        variant.latencies.append(time.perf_counter() - began)

    cpu_before = meter.read()
    with LoopLag() as lag:
        began = time.perf_counter()
        await asyncio.gather(*(one(s) for s in starts))
        variant.wall += time.perf_counter() - began
    cpu_after = meter.read()
    variant.lag.extend(lag.samples)
    variant.add_cpu({k: None if cpu_before[k] is None or cpu_after[k] is None else cpu_after[k] - cpu_before[k]
                     for k in cpu_before})


def _cpu_ratio(bare: dict, gated: dict) -> float | None:
    if None in bare.values() or None in gated.values():
        return None
    return round(sum(bare.values()) / sum(gated.values()), 3)


async def _history_size(client, workflow_id: str) -> dict:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return {"events": len(history.events), "bytes": sum(e.ByteSize() for e in history.events)}


# -- the lab, in a process of its own --------------------------------------------------------
def _start_lab(settings) -> subprocess.Popen:
    log = open(settings.home / "lab.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "lab"], env=child_env(settings), stdout=log,
                            stderr=subprocess.STDOUT)


async def _wait_for_lab(settings, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the bench's lab exited at start; see {settings.home / 'lab.log'}")
            try:
                if (await http.get(f"{settings.lab_url}/_lab/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bench's lab did not answer within {timeout:g}s")
            await asyncio.sleep(0.1)


async def start_dev_server(home: Path) -> WorkflowEnvironment:
    """The embedded dev server as `handrail up` runs it (SQLite in WAL mode under `home`)."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=data_converter(),  # encrypted when HANDRAIL_PAYLOAD_KEY is set
        search_attributes=[SearchAttributeKey.for_keyword(n) for n in SEARCH_ATTRIBUTES],
        dev_server_extra_args=[
            "--db-filename", str(home / "temporal.db"),
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
        ],
        ui=False,
    )


# -- the bench ----------------------------------------------------------------------------
async def bench_runbooks(runs: int = 200, rounds: int = 2) -> dict:
    configure("WARNING")  # the gate logs each change; hundreds of lines would drown the result
    from worker import build_worker

    home = Path(tempfile.mkdtemp(prefix="handrail-bench-"))
    from handrail.gate import signatures

    bench_key = signatures.new_ed25519_key()  # runs started by a person carry a signed request
    lab_port = free_port()
    settings = load_settings({
        "HANDRAIL_HOME": str(home),
        "HANDRAIL_POLICY": str(_guarded_policy(home, signatures.public_key_of(bench_key).line())),
        "HANDRAIL_LAB_URL": f"http://127.0.0.1:{lab_port}",
        "HANDRAIL_TASK_QUEUE": "bench",
        "HANDRAIL_USER": "bench",
    })
    lab = _start_lab(settings)
    env = None
    try:
        await _wait_for_lab(settings, lab)
        env = await start_dev_server(home)
        client = env.client
        meter = CpuMeter(_temporal_child(), lab.pid)
        ledger = open_ledger(settings)
        gated, bare = Variant(), Variant()

        def bare_start(wid: str, i: int):
            return lambda: client.start_workflow(BenchBare.run, i, id=wid, task_queue="bench")

        def gated_start(wid: str, i: int):
            trigger = EgressBlockTrigger(ip=_bench_ip(i), reason="bench", requested_by="bench")
            return lambda: client.start_workflow(EgressBlock.run, trigger, id=wid, task_queue="bench",
                                                 search_attributes=start_attributes(EGRESS_BLOCK, "bench"),
                                                 memo=_signed_request(bench_key, wid, trigger))

        async with ToolClients.from_settings(settings) as tools:
            worker = build_worker(client, settings, tools, ledger, extra_workflows=[BenchBare],
                                  extra_activities=[bench_noop])
            async with worker:
                warm = rounds * runs
                await asyncio.gather(*(s() for s in [bare_start(f"warm-bare-{i}", i) for i in range(WARM_UP_RUNS)]
                                       + [gated_start(f"warm-gate-{i}", warm + i) for i in range(WARM_UP_RUNS)]))
                for wid in [f"warm-bare-{i}" for i in range(WARM_UP_RUNS)] + [
                        f"warm-gate-{i}" for i in range(WARM_UP_RUNS)]:
                    await client.get_workflow_handle(wid).result()
                for r in range(rounds):
                    await _batch([bare_start(f"bare-{r}-{i}", i) for i in range(runs)], bare, meter)
                    await _batch([gated_start(f"gate-{r}-{i}", r * runs + i) for i in range(runs)], gated, meter)
                sample = await client.get_workflow_handle_for(EgressBlock.run, "gate-0-0").result()
                histories = {"handrail": await _history_size(client, "gate-0-0"),
                             "bare": await _history_size(client, "bare-0-0")}
        ledger.close()
    finally:
        if env is not None:
            await env.shutdown()
        lab.terminate()
        try:
            lab.wait(timeout=10)
        except subprocess.TimeoutExpired:
            lab.kill()
        shutil.rmtree(home, ignore_errors=True)
    g, b = gated.summary(), bare.summary()
    return {
        "runs": runs,
        "rounds": rounds,
        "yardstick": "starter.bare_workflow.BenchBare: one no-op activity, a module importing only temporalio",
        "gate_state_sample": sample.state.value,
        "handrail_runs_per_second": g["runs_per_second"],
        "bare_runs_per_second": b["runs_per_second"],
        "ratio_to_bare": round(g["runs_per_second"] / b["runs_per_second"], 3),
        "handrail_p50_seconds": g["p50_seconds"],
        "handrail_p99_seconds": g["p99_seconds"],
        "bare_p50_seconds": b["p50_seconds"],
        "bare_p99_seconds": b["p99_seconds"],
        "cpu_ms_per_run": {"handrail": g["cpu_ms_per_run"], "bare": b["cpu_ms_per_run"]},
        # CPU per bare run over CPU per gated run (worker + server + lab): the ratio when the cores
        # are the bottleneck; less sensitive to neighbours than runs/s. Null if a process was unreadable.
        "cpu_ratio_to_bare": _cpu_ratio(b["cpu_ms_per_run"], g["cpu_ms_per_run"]),
        "loop_lag_ms": {"handrail": g["loop_lag_ms"], "bare": b["loop_lag_ms"]},
        "history": histories,
    }
