"""The embedded stack end to end: real `temporal server start-dev`, `python -m lab`,
`python -m worker`, on free ports with HANDRAIL_HOME under tmp_path.

One detached stack is started, inspected, refused a second time, stopped, restarted on the
same database; meanwhile a second stack with its own home and ports runs side by side under
a supervising `start(detach=False)` in a subprocess, which SIGTERM stops cleanly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, WorkflowExecutionStatus

from handrail.gate.search import SEARCH_ATTRIBUTES
from handrail.ops import stack
from handrail.ops.config import Settings, load_settings
from handrail.ops.ports import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
POLICY = REPO / "policy.toml"




def stack_env(home: Path, namespace: str) -> dict[str, str]:
    return {
        "HANDRAIL_HOME": str(home),
        "HANDRAIL_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "HANDRAIL_UI_PORT": str(free_port()),
        "HANDRAIL_LAB_URL": f"http://127.0.0.1:{free_port()}",
        "HANDRAIL_NAMESPACE": namespace,
        "HANDRAIL_TASK_QUEUE": "handrail-stack-test",
        "HANDRAIL_POLICY": str(POLICY),
    }


def pid_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def assert_healthy(settings: Settings, pids: dict[str, int]) -> None:
    report = stack.status(settings)
    assert report["home"] == str(settings.home)
    assert report["ui_url"] == settings.ui_url
    for name in ("temporal", "lab", "worker"):
        component = report["components"][name]
        assert component["pid"] == pids[name], report
        assert component["alive"] and component["healthy"], report
    assert report["components"]["temporal"]["port"] == settings.temporal_port
    assert report["components"]["lab"]["url"] == settings.lab_url


async def _client(settings: Settings) -> Client:
    return await Client.connect(settings.temporal_address, namespace=settings.namespace)


async def test_stack_up_status_refuse_down_restart_and_side_by_side(tmp_path: Path) -> None:
    env_a = stack_env(tmp_path / "a", "handrail-e2e")
    a = load_settings(env_a)
    env_b = stack_env(tmp_path / "b", "default")
    b = load_settings(env_b)
    supervisor: asyncio.subprocess.Process | None = None
    try:
        started = time.monotonic()
        seen: list[stack.StackInfo] = []
        info = await asyncio.to_thread(stack.start, a, True, seen.append)
        assert seen == [info]
        assert set(info.pids) == {"temporal", "lab", "worker"}
        assert info.temporal_address == a.temporal_address and info.lab_url == a.lab_url
        assert info.ui_url == a.ui_url and info.log_dir == a.home / "logs"
        assert time.monotonic() - started < 60
        record = json.loads((a.home / "stack.json").read_text())
        assert {n: c["pid"] for n, c in record["components"].items()} == info.pids
        assert record["ui_url"] == a.ui_url and record["started_at"]
        assert a.lab_token not in (a.home / "stack.json").read_text()
        await asyncio.to_thread(assert_healthy, a, info.pids)

        # A second `up` on the same home is refused, naming the pids.
        with pytest.raises(stack.StackError, match="A stack is already running from") as refused:
            await asyncio.to_thread(stack.start, a, True)
        assert str(info.pids["temporal"]) in str(refused.value)
        assert "`handrail down`" in str(refused.value)

        # Another home on a taken port is refused before anything starts.
        taken = load_settings(
            {
                **stack_env(tmp_path / "c", "default"),
                "HANDRAIL_TEMPORAL_ADDRESS": a.temporal_address,
            }
        )
        with pytest.raises(
            stack.StackError,
            match=f"Port {a.temporal_port} is in use; set HANDRAIL_TEMPORAL_ADDRESS",
        ):
            await asyncio.to_thread(stack.start, taken, True)
        assert not (tmp_path / "c" / "stack.json").exists()

        # Namespace prepared: 30-day retention, search attributes registered.
        client = await _client(a)
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=a.namespace)
        )
        assert described.config.workflow_execution_retention_ttl.ToSeconds() == 30 * 24 * 3600
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=a.namespace)
        )
        keyword = IndexedValueType.Value("INDEXED_VALUE_TYPE_KEYWORD")
        for name in SEARCH_ATTRIBUTES:
            assert listed.custom_attributes.get(name) == keyword, name
        # A run that must survive the restart (no worker polls this queue: it just waits).
        await client.start_workflow(
            "StackRestartProbe", id="stack-restart-probe", task_queue="stack-probe-nobody-polls"
        )

        # Down stops exactly the recorded pids, worker first.
        lines = await asyncio.to_thread(stack.stop, a)
        assert [line.split()[1] for line in lines] == ["worker", "lab", "temporal"]
        assert all(line.startswith("stopped ") for line in lines), lines
        assert all(pid_gone(pid) for pid in info.pids.values())
        assert not (a.home / "stack.json").exists()
        assert "nothing to stop" in (await asyncio.to_thread(stack.stop, a))[0]
        gone = await asyncio.to_thread(stack.status, a)
        assert not gone["running"] and not any(c["healthy"] for c in gone["components"].values())

        # Restart on the same home and database: the run is still there.
        again = await asyncio.to_thread(stack.start, a, True)
        assert set(again.pids.values()).isdisjoint(info.pids.values())
        client = await _client(a)
        probe = await client.get_workflow_handle("stack-restart-probe").describe()
        assert probe.status == WorkflowExecutionStatus.RUNNING
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=a.namespace)
        )
        assert set(SEARCH_ATTRIBUTES) <= set(listed.custom_attributes)

        # Side by side: a second stack, supervised in the foreground by another process.
        supervisor = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SUPERVISE,
            cwd=REPO,
            env={**os.environ, **env_b},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        ready = (await asyncio.wait_for(supervisor.stdout.readline(), 90)).decode()
        assert ready.startswith("READY "), ready + (await supervisor.stdout.read()).decode()
        pids_b = json.loads(ready.removeprefix("READY "))["pids"]
        assert set(pids_b.values()).isdisjoint(again.pids.values())
        await asyncio.to_thread(assert_healthy, b, pids_b)
        await asyncio.to_thread(assert_healthy, a, again.pids)

        supervisor.send_signal(signal.SIGTERM)
        out = (await asyncio.wait_for(supervisor.stdout.read(), 30)).decode()
        assert await supervisor.wait() == 0 and "STOPPED" in out, out
        assert all(pid_gone(pid) for pid in pids_b.values())
        assert not (b.home / "stack.json").exists()
        await asyncio.to_thread(assert_healthy, a, again.pids)  # A did not notice
    finally:
        if supervisor is not None and supervisor.returncode is None:
            supervisor.send_signal(signal.SIGTERM)
            await asyncio.wait_for(supervisor.wait(), 30)
        for settings in (a, b):
            await asyncio.to_thread(stack.stop, settings)


SUPERVISE = """
import json, sys
from handrail.ops import stack
from handrail.ops.config import load_settings
try:
    stack.start(load_settings(), detach=False,
                on_ready=lambda info: print("READY", json.dumps(info.to_dict()), flush=True))
except stack.StackError as exc:
    print("ERROR", exc, *exc.log_tail, sep="\\n", flush=True)
    sys.exit(1)
print("STOPPED", flush=True)
"""
