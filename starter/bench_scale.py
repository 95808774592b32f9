"""`handrail bench runbooks --workers N --ledger postgresql://…|embedded`: does scaling out pay?

The same harness as `handrail bench runbooks` (one dev server, the lab in its own process,
the bare yardstick in this process), but the gated runs go to worker *processes* — the
production shape — in two configurations measured in the same bench run, batches
alternating so a noisy neighbour hits every configuration alike:

- `sqlite x1`: one worker process, the ledger in SQLite under its home (today's default);
- `postgresql xN`: N worker processes, each with a home of its own, sharing nothing but
  Temporal, the lab and the PostgreSQL ledger (`embedded` starts a PostgreSQL for the bench).

The top-level keys keep `bench runbooks`' JSON shape and describe the PostgreSQL configuration;
`configurations` holds both, each with its own `ratio_to_bare`. Issue 13's target: the
PostgreSQL configuration at least as fast as SQLite x1, and its ratio no worse.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from temporalio.worker import Worker

from handrail.gate import signatures
from handrail.gate.models import EgressBlockTrigger
from handrail.ops.config import Settings, load_settings
from handrail.ops.log import configure
from handrail.ops.ports import free_port
from handrail.ops.postgres import EmbeddedPostgres
from handrail.ops.sandbox import workflow_runner
from handrail.ops.stack import child_env
from starter.bare_workflow import BenchBare, bench_noop
from starter.bench import (
    WARM_UP_RUNS,
    CpuMeter,
    Variant,
    _batch,
    _bench_ip,
    _guarded_policy,
    _process_cpu,
    _signed_request,
    _start_lab,
    _temporal_child,
    _wait_for_lab,
    start_dev_server,
)
from workflows.egress_block import RUNBOOK as EGRESS_BLOCK
from workflows.egress_block import EgressBlock
from workflows.gate import start_attributes

READY_TIMEOUT_S = 60.0


class WorkerProcesses:
    """N `python -m worker` processes on one task queue; their CPU is summed as "worker"."""

    def __init__(self, settings: list[Settings]):
        self.settings = settings
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        for s in self.settings:
            s.home.mkdir(parents=True, exist_ok=True)
            log = open(s.home / "worker.log", "ab")
            self.procs.append(subprocess.Popen([sys.executable, "-m", "worker"], env=child_env(s), stdout=log,
                                               stderr=subprocess.STDOUT))

    def cpu(self) -> float | None:
        used = [_process_cpu(p.pid) for p in self.procs]
        return None if None in used else sum(used)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


class ProcessMeter(CpuMeter):
    """CPU of worker processes (not this one), the Temporal server, the lab and, when the bench
    started it, the PostgreSQL server (the ledger's other half of the cost)."""

    def __init__(self, server_pid: int | None, lab_pid: int, workers: WorkerProcesses,
                 postgres_data: Path | None = None):
        super().__init__(server_pid, lab_pid)
        self.workers = workers
        self.postgres_data = postgres_data

    def read(self) -> dict[str, float | None]:
        used = {**super().read(), "worker": self.workers.cpu()}
        if self.postgres_data is not None:
            used["postgres"] = _postgres_cpu(self.postgres_data)
        return used


def _postgres_cpu(data_dir: Path) -> float | None:
    """CPU seconds of a PostgreSQL server: the postmaster with the backends it reaped (its
    cutime/cstime) and every live process it forked (backends, WAL writer, checkpointer)."""
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    ticks = sum(int(f) for f in fields[11:15])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            child = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(child[1]) == postmaster:
            ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _config_settings(base: dict[str, str], root: Path, name: str, count: int, ledger_url: str) -> list[Settings]:
    queue = f"bench-{name}"
    return [load_settings({**base, "HANDRAIL_HOME": str(root / f"{name}-{i}"), "HANDRAIL_TASK_QUEUE": queue,
                           "HANDRAIL_LEDGER_URL": ledger_url}) for i in range(count)]


async def bench_scale(runs: int = 200, rounds: int = 2, workers: int = 2, ledger: str = "embedded") -> dict:
    configure("WARNING")

    root = Path(tempfile.mkdtemp(prefix="handrail-bench-scale-"))
    key = signatures.new_ed25519_key()
    base = {
        "HANDRAIL_POLICY": str(_guarded_policy(root, signatures.public_key_of(key).line())),
        "HANDRAIL_LAB_URL": f"http://127.0.0.1:{free_port()}",
        "HANDRAIL_USER": "bench",
    }
    here = load_settings({**base, "HANDRAIL_HOME": str(root / "bench"), "HANDRAIL_TASK_QUEUE": "bench"})
    here.home.mkdir(parents=True)
    env = None
    with ExitStack() as cleanup:
        if not os.environ.get("HANDRAIL_BENCH_KEEP"):
            cleanup.callback(shutil.rmtree, root, True)
        postgres_data = None
        if ledger == "embedded":
            server = EmbeddedPostgres()
            ledger = server.start()
            cleanup.callback(server.stop)
            postgres_data = server.data_dir
        lab = _start_lab(here)
        cleanup.callback(lab.kill)
        await _wait_for_lab(here, lab)
        env = await start_dev_server(root)
        try:
            client = env.client
            base["HANDRAIL_TEMPORAL_ADDRESS"] = client.service_client.config.target_host
            configs = {
                "sqlite x1": _config_settings(base, root, "sqlite", 1, ""),
                f"postgresql x{workers}": _config_settings(base, root, "postgresql", workers, ledger),
            }
            procs = {name: WorkerProcesses(s) for name, s in configs.items()}
            for p in procs.values():
                p.start()
                cleanup.callback(p.stop)
            server_pid = _temporal_child()
            bare_meter = CpuMeter(server_pid, lab.pid)
            meters = {name: ProcessMeter(server_pid, lab.pid, p, postgres_data) for name, p in procs.items()}
            bare = Variant()
            gated = {name: Variant() for name in configs}
            offsets = {name: (n + 1) * (rounds + 1) * runs for n, name in enumerate(configs)}

            def bare_start(wid: str, i: int):
                return lambda: client.start_workflow(BenchBare.run, i, id=wid, task_queue="bench")

            def gated_start(name: str, wid: str, i: int):
                trigger = EgressBlockTrigger(ip=_bench_ip(offsets[name] + i), reason="bench", requested_by="bench")
                return lambda: client.start_workflow(
                    EgressBlock.run, trigger, id=wid, task_queue=configs[name][0].task_queue,
                    search_attributes=start_attributes(EGRESS_BLOCK, "bench"), memo=_signed_request(key, wid, trigger))

            bare_worker = Worker(client, task_queue="bench", workflows=[BenchBare], activities=[bench_noop],
                                 workflow_runner=workflow_runner())
            async with bare_worker:
                began = time.monotonic()
                warm = []
                for name in configs:  # every worker process answers before anything is measured
                    warm += [gated_start(name, f"warm-{name}-{i}", rounds * runs + i)
                             for i in range(WARM_UP_RUNS * workers)]
                warm += [bare_start(f"warm-bare-{i}", i) for i in range(WARM_UP_RUNS)]
                handles = [await s() for s in warm]
                await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), READY_TIMEOUT_S)
                for r in range(rounds):
                    await _batch([bare_start(f"bare-{r}-{i}", i) for i in range(runs)], bare, bare_meter)
                    for name in configs:
                        await _batch([gated_start(name, f"{name}-{r}-{i}", r * runs + i) for i in range(runs)],
                                     gated[name], meters[name])
                warm_s = time.monotonic() - began
            scaled_name = f"postgresql x{workers}"
            chain = await asyncio.to_thread(_shared_chain, configs[scaled_name][0])
        finally:
            await env.shutdown()
    b = bare.summary()
    per_config = {}
    for name, variant in gated.items():
        g = variant.summary()
        per_config[name] = {**g, "ratio_to_bare": round(g["runs_per_second"] / b["runs_per_second"], 3)}
    sqlite, scaled = per_config["sqlite x1"], per_config[f"postgresql x{workers}"]
    return {
        "runs": runs,
        "rounds": rounds,
        "workers": workers,
        "yardstick": "starter.bare_workflow.BenchBare: one no-op activity, a module importing only temporalio",
        "handrail_runs_per_second": scaled["runs_per_second"],
        "bare_runs_per_second": b["runs_per_second"],
        "ratio_to_bare": scaled["ratio_to_bare"],
        "handrail_p50_seconds": scaled["p50_seconds"],
        "handrail_p99_seconds": scaled["p99_seconds"],
        "bare_p50_seconds": b["p50_seconds"],
        "bare_p99_seconds": b["p99_seconds"],
        "cpu_ms_per_run": {"handrail": scaled["cpu_ms_per_run"], "bare": b["cpu_ms_per_run"]},
        "configurations": per_config,
        "postgresql_at_least_sqlite": scaled["runs_per_second"] >= sqlite["runs_per_second"],
        "ratio_no_worse_on_postgresql": scaled["ratio_to_bare"] >= sqlite["ratio_to_bare"],
        "seconds": round(warm_s, 1),
        # proof that the workers shared one ledger: one chain that verifies, holding every gated run's change
        "postgresql_chain": chain,
        "postgresql_changes_expected": (rounds * runs + WARM_UP_RUNS * workers),
    }


def _shared_chain(settings: Settings) -> dict:
    from handrail.gate.ledger import open_ledger

    ledger = open_ledger(settings)
    try:
        verdict = ledger.verify()
        changes = ledger.read("SELECT COUNT(*) FROM changes")[0][0]
        return {"ok": verdict.ok, "audit_rows": verdict.rows, "changes": changes, "reason": verdict.reason}
    finally:
        ledger.close()
