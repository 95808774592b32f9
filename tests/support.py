"""Shared test plumbing: a real lab, a real ledger and a real worker per test.

Each test gets its own HANDRAIL_HOME, lab database, ledger and task queue, so tests never
see each other's state; the Temporal server (time-skipping or dev) is shared per session.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from temporalio import workflow as temporal_workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from handrail.gate import decisions as signed
from handrail.gate import signatures, signing
from handrail.gate.expiry import inherited_expiry_id
from handrail.gate.ledger import Ledger
from handrail.gate.models import Decision, RunStatus
from handrail.ops.config import Settings, load_settings
from handrail.tools import ToolClients
from lab.app import create_app
from lab.testing import prepare
from worker import build_worker

FIXTURES = Path(os.environ.get("HANDRAIL_FIXTURES")
                or Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "real")

# One SSH key per test user, made once per session: decisions in tests are signed like real ones.
TEST_KEYS = {user: signatures.new_ed25519_key() for user in ("alice", "bob", "erin", "carol", "dave")}
_ROLES = {"alice": "soc-analyst", "bob": "soc-analyst", "erin": "soc-analyst", "carol": "soc-lead", "dave": None}


def public_line(user: str) -> str:
    return signatures.public_key_of(TEST_KEYS[user], f"{user}@test").line()


def key_file(user: str, directory: Path) -> Path:
    """The user's private key as an OpenSSH key file (for the CLI and ssh-keygen)."""
    path = Path(directory) / f"{user}_ed25519"
    if not path.exists():
        path.write_bytes(signatures.private_key_file(TEST_KEYS[user]))
        path.chmod(0o600)
    return path


def user_lines() -> str:
    def line(user: str) -> str:
        roles = f'"{_ROLES[user]}"' if _ROLES[user] else ""
        return f'{user} = {{ roles = [{roles}], keys = ["{public_line(user)}"] }}'

    return "\n".join(line(u) for u in TEST_KEYS)


USERS = f"""
[users]
{user_lines()}

[[protected_networks]]
name = "SaaS CRM"
cidr = "161.71.0.0/16"

[[protected_networks]]
name = "Largest customer"
cidr = "146.75.0.0/16"
"""


def with_test_keys(policy: str) -> str:
    """Give the test users of any policy text (the shipped one too) their test keys."""
    import re

    def add(match: re.Match) -> str:
        return f'{match.group(1)} = {{ roles = {match.group(2)}, keys = ["{public_line(match.group(1))}"] }}'

    return re.sub(r"^(alice|bob|erin|carol|dave) = \{ roles = (\[[^\]]*\]) \}\s*$", add, policy, flags=re.M)


def make_policy(
    mode: str = "approve",
    required: int = 1,
    timeout: str = "1h",
    escalation: str = "1h",
    on_timeout: str = "deny",
    escalate_to: str = '{ roles = ["soc-lead"] }',
    guardrails: str = '{ type = "never_block" }, { type = "no_reserved_space" }',
) -> str:
    block = f"""
mode = "{mode}"
approvers = {{ roles = ["soc-analyst"] }}
required_approvals = {required}
approval_timeout = "{timeout}"
escalate_to = {escalate_to}
escalation_timeout = "{escalation}"
on_timeout = "{on_timeout}"
alert_priority = "P1"
guardrails = [{guardrails}]
"""
    return (
        USERS
        + '\n[actions."firewall.egress_block"]'
        + block
        + '\n[actions."firewall.egress_unblock"]\nmode = "guarded"\n'
    )


@dataclass
class Stack:
    client: Client
    settings: Settings
    tools: ToolClients
    ledger: Ledger
    home: Path
    started: list = field(default_factory=list)
    _skipping: bool | None = None

    def set_policy(self, text: str) -> None:
        path = self.settings.policy_path
        path.write_text(text)
        stat = path.stat()  # make sure the worker sees a new mtime even within one second
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    async def start(self, workflow, arg, *, id: str | None = None, signed: bool = True, **kw) -> WorkflowHandle:
        """Start a run as Handrail would: a test user's trigger carries that user's signed request
        (like `handrail run …`); a service-named trigger (`mailbox`, `dlp-poller`) is started by a
        parent workflow, like a poller's run. `signed=False` starts it bare, as a raw client would."""
        run_id = id or f"test-{uuid.uuid4().hex[:10]}"
        requester = getattr(arg, "requested_by", None)
        definition = temporal_workflow._Definition.must_from_run_fn(workflow)
        if signed and requester is not None and requester not in TEST_KEYS and _is_runbook(definition.cls):
            from tests.runbooks_for_tests import Launch, ServiceLauncher

            launcher = await self.client.start_workflow(
                ServiceLauncher.run,
                Launch(workflow=definition.name, run_id=run_id, trigger=arg.model_dump(mode="json")),
                id=f"{LAUNCHER_PREFIX}{run_id}", task_queue=self.settings.task_queue)
            self.started.append(launcher)
            started = await _until_started(self.client.get_workflow_handle(run_id))
            handle = self.client.get_workflow_handle_for(workflow, run_id, run_id=started,
                                                         first_execution_run_id=started)
            if hasattr(launcher, "env"):  # the time-skipping server's handle: result() lets time skip
                handle.__class__, handle.env = launcher.__class__, launcher.env
        else:
            if signed and requester in TEST_KEYS:
                now = await self.server_now()
                kw.setdefault("memo", signed_request_memo(workflow, run_id, arg, requester, now=now))
            handle = await self.client.start_workflow(workflow, arg, id=run_id, task_queue=self.settings.task_queue,
                                                      **kw)
        self.started.append(handle)
        _EVERY_RUN.append(handle)
        _report_hangs(handle)
        return handle

    async def server_now(self) -> datetime:
        """The server's clock: the time-skipping server's runs ahead of the wall clock."""
        if self._skipping is not False:
            try:
                import google.protobuf.empty_pb2

                resp = await self.client.test_service.get_current_time(google.protobuf.empty_pb2.Empty())
                self._skipping = True
                return resp.time.ToDatetime().replace(tzinfo=timezone.utc)
            except Exception:
                self._skipping = False
        return datetime.now(timezone.utc)

    async def terminate_leftovers(self) -> None:
        """A failed test must not leave timers behind on the shared time-skipping server."""
        expiries = [self.client.get_workflow_handle(f"expiry-{h.id}") for h in self.started]  # a run's TTLs
        expiries += [self.client.get_workflow_handle(inherited_expiry_id(r.change_id))  # one taken over
                     for h in self.started for r in self.ledger.changes_for_run(h.id)
                     if r.inherited_from and r.expires_at]
        for handle in [*reversed(self.started), *expiries]:  # a run before the launcher that waits for it
            if handle.id.startswith(LAUNCHER_PREFIX):
                await _until_closed(handle, LAUNCHER_CLOSE_S)
            await terminate_between_calls(handle)

    async def status(self, handle: WorkflowHandle) -> RunStatus | None:
        try:
            return await handle.query("status", result_type=RunStatus)
        except Exception as exc:
            if "Nondeterminism" not in str(exc):
                raise
            raise AssertionError(f"{exc}\n{await history_outline(handle)}") from exc

    async def wait_for(self, handle: WorkflowHandle, predicate, timeout: float = 20.0) -> RunStatus:
        """Poll the status query until predicate(status) holds (real time, not skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status = await self.status(handle)
            if status is not None and predicate(status):
                return status
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not reached; last status: {status}")
            await asyncio.sleep(0.05)

    async def result(self, handle: WorkflowHandle, timeout: float = 60.0):
        """The run's result, skipping time as `handle.result()` does; a run that does not end
        within `timeout` real seconds fails with its pending work and history outline."""
        try:
            return await asyncio.wait_for(handle.result(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(await hang_report(handle, timeout)) from None

    async def edl(self) -> list[str]:
        return [line for line in (await self.tools.firewall.edl()).splitlines() if line.strip()]


QUIET_TIMEOUT_S = 10.0
LAUNCHER_PREFIX = "launch-"  # the ServiceLauncher parent of a run a service starts (tests/runbooks_for_tests.py)
LAUNCHER_CLOSE_S = 3.0  # a launcher fails on its own within milliseconds of its child's terminate


async def _until_closed(handle: WorkflowHandle, timeout: float) -> None:
    """Give a launcher whose child was just terminated the time to fail on its own.

    Terminated at once, before the server had handed it its child's close event, it left the
    time-skipping server's clock stuck for the next test in the module (about 1 run in 20 of
    test_rogue_device: the next run's approval timer never fired, nothing pending anywhere;
    the server loses close events of abandoned children)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                return
        except RPCError:
            return
        await asyncio.sleep(0.05)


async def terminate_between_calls(handle: WorkflowHandle, reason: str = "test finished") -> None:
    """Terminate a run left running, once none of its activities or workflow tasks is pending."""
    try:
        if await _quiet(handle):
            await handle.terminate(reason)
    except RPCError:
        pass  # it ended meanwhile, or never existed (an expiry run that was never started)


async def until_quiet(handle: WorkflowHandle, timeout: float = QUIET_TIMEOUT_S) -> None:
    """Wait until the run has no activity pending and no workflow task in flight: it sits on a
    timer or a condition. Cancel a run on the time-skipping server only then, unless the test
    is about cancelling mid-call (see :func:`_quiet`)."""
    if not await _quiet(handle, timeout):
        raise AssertionError(f"{handle.id} ended while the test waited for it to be between calls")


async def _quiet(handle: WorkflowHandle, timeout: float = QUIET_TIMEOUT_S) -> bool:
    """Whether the run is still running, once no activity of it is pending (started or not
    yet) and no workflow task is in flight; after `timeout`, whatever it is doing.

    The time-skipping server (temporal-test-server 1.40) never releases its time lock for an
    activity, started or only scheduled, of a run terminated meanwhile: time stops skipping
    for every later run on that server, and the next test that waits for a timer hangs
    (measured: a one-day sleep on a fresh task queue never ended after such a terminate; the
    same terminate once the activity had ended did not stop it). A cancel whose workflow task
    also cancels activities not yet started was refused by the server and left the run stuck
    at WORKFLOW_TASK_STARTED for good. So leftover runs are terminated, and waiting runs
    cancelled, only between calls; the worker is still up to finish them.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await handle.describe()
        if described.status != WorkflowExecutionStatus.RUNNING:
            return False
        raw = described.raw_description
        if not (raw.pending_activities or raw.pending_workflow_task.scheduled_time.seconds) \
                or asyncio.get_running_loop().time() > deadline:
            return True
        await asyncio.sleep(0.05)


RESULT_TIMEOUT_S = 90.0  # real seconds, under pytest's 120: a run that hangs fails with evidence


def _report_hangs(handle: WorkflowHandle) -> None:
    """Make `handle.result()` fail with the run's pending work and history if it hangs.

    A run on the time-skipping server that waits for ever (time not skipped, a task never
    redelivered) otherwise ends in a bare pytest timeout that says nothing about why.
    """
    result = handle.result

    async def result_or_report(**kw):
        try:
            return await asyncio.wait_for(result(**kw), RESULT_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise AssertionError(await hang_report(handle, RESULT_TIMEOUT_S)) from None

    handle.result = result_or_report


_EVERY_RUN: list[WorkflowHandle] = []  # every run tests started in this process (the servers have no listing)


async def _pending(handle: WorkflowHandle) -> str:
    raw = (await handle.describe()).raw_description
    pending = [(a.activity_type.name, a.state, a.attempt) for a in raw.pending_activities]
    task = raw.pending_workflow_task
    children = [c.workflow_id for c in raw.pending_children]
    return (f"pending activities {pending}; "
            f"pending workflow task {(task.state, task.attempt) if task.scheduled_time.seconds else None}; "
            f"pending children {children}")


async def hang_report(handle: WorkflowHandle, waited: float) -> str:
    """What a run that did not end is waiting on: pending activities, workflow task, children,
    history; and every other run on the same server still running (one of them can hold the
    time-skipping server's clock)."""
    others = []
    for other in _EVERY_RUN:
        if other is handle or other.id == handle.id or other._client is not handle._client:
            continue
        for candidate in (other, handle._client.get_workflow_handle(f"expiry-{other.id}")):
            try:
                if (await candidate.describe()).status == WorkflowExecutionStatus.RUNNING:
                    others.append(f"  {candidate.id}: {await _pending(candidate)}")
            except Exception:
                continue
    return (f"{handle.id} did not end in {waited:g} s; {await _pending(handle)}\n"
            f"other runs still running on this server:\n" + ("\n".join(others) or "  none") + "\n"
            f"{await history_outline(handle)}")


async def history_outline(handle: WorkflowHandle, into: Path | None = None) -> str:
    """The run's history, one line an event, with the run's history JSON saved beside it.

    For a failure that cannot be reproduced at will (a replay that did not match the history),
    so that the history the code did not replay is kept, for `Replayer` to replay.
    """
    history = await handle.fetch_history()
    saved = (into or Path(os.environ.get("HANDRAIL_TEST_HISTORIES", "/tmp"))) / f"history-{handle.id}.json"
    saved.write_text(history.to_json())
    lines = [f"history of {handle.id} (saved to {saved}):"]
    for event in history.events:
        kind = event.WhichOneof("attributes") or ""
        attrs = getattr(event, kind, None)
        activity = getattr(attrs, "activity_type", None)
        detail = activity.name if activity is not None else (getattr(attrs, "timer_id", "")
                                                             or getattr(attrs, "signal_name", ""))
        lines.append(f"  {event.event_id} {temporal_event_name(event.event_type)} {detail}".rstrip())
    return "\n".join(lines)


def temporal_event_name(event_type: int) -> str:
    from temporalio.api.enums.v1 import EventType

    return EventType.Name(event_type).removeprefix("EVENT_TYPE_")


async def _until_started(handle: WorkflowHandle, timeout: float = 20.0) -> str:
    """The run id of a workflow once it exists."""
    from temporalio.service import RPCError

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return (await handle.describe()).run_id
        except RPCError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


def _is_runbook(cls) -> bool:
    from workflows.gate import RunbookWorkflow

    return isinstance(cls, type) and issubclass(cls, RunbookWorkflow)


def signed_request_memo(workflow, run_id: str, trigger, requester: str, key=None, now: datetime | None = None,
                        valid_for: timedelta = timedelta(minutes=15)) -> dict:
    """The memo `handrail run …` attaches: `requester`'s signature over the trigger, issued at `now`
    (the server's clock: Stack.server_now)."""
    from handrail.gate import requests

    name = temporal_workflow._Definition.must_from_run_fn(workflow).name
    issued = (now or datetime.now(timezone.utc)) - timedelta(seconds=30)
    document = signing.new_request(name, run_id, trigger, requester, issued_at=issued, valid_for=valid_for)
    armored = signatures.sign(key or TEST_KEYS[requester], document.canonical().encode(), signatures.REQUEST_NAMESPACE)
    return {requests.REQUEST_MEMO: requests.request_memo(document, armored)}


@asynccontextmanager
async def running_stack(
    client: Client, tmp_path: Path, policy: str | None = None, workflows=None, task_queue: str | None = None,
    tools: Path | None = None, ledger_factory=None,
):
    """A worker with its own lab and ledger; reusing tmp_path (and task_queue) resumes the same estate.
    `tools` is a HANDRAIL_TOOLS file choosing real backends for some tools (the rest stay the lab);
    `ledger_factory(settings)` builds the worker's ledger instead of the SQLite one under the home."""
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.toml").write_text(with_test_keys(policy or make_policy()))
    settings = load_settings(
        {
            "HANDRAIL_HOME": str(home),
            "HANDRAIL_POLICY": str(home / "policy.toml"),
            "HANDRAIL_TASK_QUEUE": task_queue or f"tq-{uuid.uuid4().hex[:8]}",
            "HANDRAIL_USER": "tester",
            **({"HANDRAIL_TOOLS": str(tools)} if tools else {}),
        }
    )
    prepare(settings)  # a copy of a once-seeded estate: fast, and the same for every test
    for user in TEST_KEYS:  # where the CLI looks for a user's key (`handrail keys init` puts it there)
        (home / "keys").mkdir(parents=True, exist_ok=True)
        key_file(user, home / "keys")
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    ledger = ledger_factory(settings) if ledger_factory else Ledger(settings.ledger_path)
    async with ToolClients.from_settings(settings, transport=transport) as tools:
        from tests.runbooks_for_tests import ServiceLauncher

        worker = build_worker(client, settings, tools, ledger, extra_workflows=(*(workflows or ()), ServiceLauncher))
        async with worker:
            stack = Stack(client=client, settings=settings, tools=tools, ledger=ledger, home=home)
            try:
                yield stack
            finally:
                await stack.terminate_leftovers()
    ledger.close()


async def schedule_results(client: Client, name: str, count: int, result_type=None, timeout: float = 30.0) -> list:
    """The results of a Handrail schedule's first `count` runs, once each has finished."""
    from handrail.ops import schedules

    handle = client.get_schedule_handle(schedules.definition(name).schedule_id)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        actions = (await handle.describe()).info.recent_actions
        if len(actions) >= count:
            ids = [a.action.workflow_id for a in actions[:count]]
            return [await client.get_workflow_handle(i, result_type=result_type).result() for i in ids]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"schedule {name} ran {len(actions)} time(s), wanted {count}")
        await asyncio.sleep(0.2)


def make_decision(approver: str, approve: bool = True, step: str | None = None, reason: str = "",
                  status: RunStatus | None = None, *, key=None, issued_at: datetime | None = None,
                  valid_for: timedelta = timedelta(hours=24), digest: str | None = None,
                  run_id: str | None = None, nonce: str | None = None) -> Decision:
    """The one way tests build a decision signal: signed by `approver`'s test key (or `key`),
    bound to the step (the waiting one unless named) and its change digest read from `status`.

    `issued_at` defaults to the workflow time the status last showed (the time-skipping
    server's clock runs ahead of the wall clock); tests decide within a day of it.
    """
    if status is None:
        return Decision(id=uuid.uuid4().hex, approver=approver, approve=approve, step=step, reason=reason)
    record = next((s for s in status.steps if s.step_id == step), None) if step else status.pending_step()
    if record is None:
        record = status.steps[-1] if status.steps else None
    if record is None:
        raise AssertionError("make_decision: the run has no step to decide")
    seen = [status.started_at] + [s.started_at for s in status.steps if s.started_at]
    seen += [d.at for s in status.steps for d in s.decisions] + [d.at for d in status.rejected_decisions]
    document = signed.DecisionDocument(
        run_id=run_id or status.run_id, step_id=step or record.step_id,
        change_digest=digest or record.change_digest, decision="approve" if approve else "deny", reason=reason,
        signer=approver, issued_at=issued_at or max(seen), not_after=(issued_at or max(seen)) + valid_for,
        nonce=nonce or uuid.uuid4().hex,
    )
    signer_key = key if key is not None else TEST_KEYS.get(approver) or signatures.new_ed25519_key()
    return signing.sign_decision(signer_key, document, decision_id=uuid.uuid4().hex)


async def send_decision(handle: WorkflowHandle, approver: str, approve: bool = True, reason: str = "",
                        status: RunStatus | None = None, **signing) -> Decision:
    """Decide the step the run waits on now (read from its status unless given), signed."""
    status = status or await handle.query("status", result_type=RunStatus)
    step = status.pending_step() if status else None
    decision = make_decision(approver, approve, step.step_id if step else None, reason, status, **signing)
    await handle.signal("decide", decision)
    return decision


async def skipping_seconds(env, call):
    """Await `call` while the time-skipping server's clock moves a second at a time.

    The server skips time only while a client awaits a result; a test that polls instead
    (`Stack.wait_for`, `ops.rollback`, which describes and queries the run until it ends) would
    wait out an activity's retry backoff in real time. This skips it, a second per step and
    never further, so nothing that waits longer (an approval, a signed request's validity, a
    TTL) is reached. Auto skipping is off inside: a result() in `call` must not unlock too.
    Not for a call that cancels or terminates a run (see :func:`_quiet`)."""
    task = asyncio.ensure_future(call)
    try:
        with env.auto_time_skipping_disabled():
            while not task.done():
                await env.sleep(timedelta(seconds=1))
                await asyncio.wait({task}, timeout=0.05)
            return await task
    finally:
        task.cancel()  # a no-op once it is done; else (a failed skip) it must not run on unwatched


async def skip_time(env, span: timedelta, step: timedelta = timedelta(hours=12)) -> None:
    """Skip `span` on the time-skipping server in steps: one long `sleep` RPC keeps the server
    busy firing every timer on the way while the client's HTTP/2 connection waits on it, and on
    a loaded machine that connection can be torn down ("h2 protocol error") before it answers."""
    left = span
    while left > timedelta(0):
        chunk = min(step, left)
        await env.sleep(chunk)
        left -= chunk
