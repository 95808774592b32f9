"""`handrail bench runbooks`: what the step gate costs, measured against bare Temporal.

Both batches run in one process against one embedded dev server (SQLite, WAL pragmas)
with the same worker settings: N egress-block runs through the whole gate (policy in
`guarded` mode, lab over HTTP on loopback, ledger on disk) and N bare workflows that each
run one no-op activity. The ratio of their throughputs is the number to watch.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from handrail.gate.ledger import Ledger
from handrail.gate.models import EgressBlockTrigger
from handrail.gate.policy import default_policy_path
from handrail.ops.config import load_settings
from handrail.ops.log import configure
from handrail.ops.stack import temporal_binary
from handrail.tools import ToolClients
from handrail.trust.advice import edit_mode_text
from workflows.bare import BenchBare, bench_noop
from workflows.egress_block import EgressBlock
from workflows.gate import SEARCH_ATTRIBUTES


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    from handrail.gate import requests, signatures

    document = requests.new_request("EgressBlock", run_id, trigger, "bench")
    armored = signatures.sign(key, document.canonical().encode(), signatures.REQUEST_NAMESPACE)
    return {requests.REQUEST_MEMO: requests.request_memo(document, armored)}


def bench_signatures(rounds: int = 2000) -> dict:
    """Microseconds to verify one signed decision, per key kind (the workflow does this per decision)."""
    from datetime import datetime, timezone

    from cryptography.hazmat.primitives.asymmetric import ec

    from handrail.gate import decisions, signatures
    from handrail.gate.models import Change, Decision, Mode, StepRecord

    step = StepRecord(step_id="s01-firewall.egress_block", change=Change(kind="firewall.egress_block",
                      target="203.0.113.7"), mode=Mode.APPROVE)
    result: dict = {"rounds": rounds}
    for name, key in (("ssh-ed25519", signatures.new_ed25519_key()),
                      ("ecdsa-sha2-nistp256", ec.generate_private_key(ec.SECP256R1())),
                      ("ecdsa-sha2-nistp384", ec.generate_private_key(ec.SECP384R1()))):
        keys = {"bob": [signatures.public_key_of(key).line()]}
        document = decisions.new_document(run_id="r", step=step, signer="bob", approve=True,
                                          issued_at=datetime.now(timezone.utc))
        signed: Decision = decisions.sign_decision(key, document)
        began = time.perf_counter()
        for _ in range(rounds):
            doc = decisions.read_document(signed)
            decisions.verify_signer(signed, doc, keys)
        result[f"{name}_verify_us"] = round((time.perf_counter() - began) / rounds * 1e6, 1)
    return result


async def _timed_batch(client, starts) -> dict:
    latencies: list[float] = []

    async def one(start):
        began = time.perf_counter()
        handle = await start()
        await handle.result()
        latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(one(s) for s in starts))
    wall = time.perf_counter() - began
    latencies.sort()
    return {
        "runs_per_second": round(len(starts) / wall, 2),
        "wall_seconds": round(wall, 3),
        "p50_seconds": round(statistics.median(latencies), 3),
        "p99_seconds": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3),
    }


async def bench_runbooks(runs: int = 200) -> dict:
    configure("WARNING")  # the gate logs each change; 400 lines would drown the result
    from lab.app import create_app
    from worker import build_worker

    home = Path(tempfile.mkdtemp(prefix="handrail-bench-"))
    from handrail.gate import signatures

    bench_key = signatures.new_ed25519_key()  # runs started by a person carry a signed request
    lab_port = _free_port()
    settings = load_settings({
        "HANDRAIL_HOME": str(home),
        "HANDRAIL_POLICY": str(_guarded_policy(home, signatures.public_key_of(bench_key).line())),
        "HANDRAIL_LAB_URL": f"http://127.0.0.1:{lab_port}",
        "HANDRAIL_TASK_QUEUE": "bench",
        "HANDRAIL_USER": "bench",
    })
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=lab_port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        await asyncio.sleep(0.05)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        search_attributes=[SearchAttributeKey.for_keyword(n) for n in SEARCH_ATTRIBUTES],
        dev_server_extra_args=[
            "--db-filename", str(home / "temporal.db"),
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
        ],
        ui=False,
    )
    try:
        client = env.client
        ledger = Ledger(settings.ledger_path)
        async with ToolClients.from_settings(settings) as tools:
            worker = build_worker(client, settings, tools, ledger, extra_workflows=[BenchBare],
                                  extra_activities=[bench_noop])
            async with worker:
                bare = await _timed_batch(client, [
                    (lambda i=i: client.start_workflow(BenchBare.run, i, id=f"bare-{i}", task_queue="bench"))
                    for i in range(runs)
                ])
                gate = await _timed_batch(client, [
                    (lambda i=i, t=EgressBlockTrigger(ip=_bench_ip(i), reason="bench", requested_by="bench"):
                        client.start_workflow(EgressBlock.run, t, id=f"gate-{i}", task_queue="bench",
                                              memo=_signed_request(bench_key, f"gate-{i}", t)))
                    for i in range(runs)
                ])
                sample = await client.get_workflow_handle_for(EgressBlock.run, "gate-0").result()
        ledger.close()
    finally:
        await env.shutdown()
        server.should_exit = True
        thread.join(timeout=10)
        shutil.rmtree(home, ignore_errors=True)
    return {
        "runs": runs,
        "gate_state_sample": sample.state.value,
        "handrail_runs_per_second": gate["runs_per_second"],
        "bare_runs_per_second": bare["runs_per_second"],
        "ratio_to_bare": round(gate["runs_per_second"] / bare["runs_per_second"], 3),
        "handrail_p50_seconds": gate["p50_seconds"],
        "handrail_p99_seconds": gate["p99_seconds"],
        "bare_p50_seconds": bare["p50_seconds"],
        "bare_p99_seconds": bare["p99_seconds"],
    }
