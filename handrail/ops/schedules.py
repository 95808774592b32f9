"""The Temporal Schedules Handrail keeps: pollers and the intel sync.

Each entry says which workflow a schedule starts, with what argument, and how often by
default. `handrail schedule NAME …` manages them; `handrail up` makes sure they exist.
Overlap policy is `skip`: a poll or sync still running when the next is due is not doubled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from handrail.gate.policy import parse_duration
from handrail.ops.config import Settings


@dataclass(frozen=True)
class ScheduleDef:
    name: str
    workflow: str  # the workflow type name
    argument: Callable[[], BaseModel]
    every: str
    description: str
    always_active: bool = False  # created active even when `handrail up` pauses the others (safety nets)

    @property
    def schedule_id(self) -> str:
        return f"handrail-{self.name}"


def _argument(module: str, factory: str) -> Callable[[], BaseModel]:
    """Import the argument's model only when a schedule is created (nothing runs at import)."""

    def build() -> BaseModel:
        import importlib

        return getattr(importlib.import_module(module), factory)()

    return build


# One entry per schedule. Add yours here, e.g.
#   "mailbox": ScheduleDef("mailbox", "PollMailbox", _argument("handrail.runbooks.phishing.rules", "MailboxPoll"),
#                          "1m", "Start a phishing run for each new message in the phishing mailbox."),
SCHEDULES: dict[str, ScheduleDef] = {
    "dlp": ScheduleDef("dlp", "PollDlp", _argument("handrail.runbooks.exfiltration", "DlpPoll"),
                       "1m", "Start a data exfiltration run for each new DLP alert."),
    "mailbox": ScheduleDef("mailbox", "PollMailbox", _argument("handrail.runbooks.phishing.rules", "MailboxPoll"),
                           "1m", "Start a phishing run for each new message in the phishing mailbox."),
    "iam": ScheduleDef("iam", "PollIamEvents", _argument("handrail.runbooks.privilege", "IamPoll"),
                       "1m", "Start a privilege-guard run for each new IAM privilege-change event."),
    "nac": ScheduleDef("nac", "PollNacDevices", _argument("handrail.runbooks.rogue", "NacPoll"),
                       "5m", "Start a rogue-device run for each connected device NAC sees that the CMDB lacks."),
    "intel": ScheduleDef("intel", "IntelSync", _argument("handrail.intel.messages", "scheduled_trigger"),
                         "1h", "Sync the threat-intel feeds to the proxy, the egress blocklist and the IPS."),
    "reconcile": ScheduleDef("reconcile", "Reconcile", _argument("handrail.gate.reconcile", "ReconcileTrigger"),
                             "5m",
                             "Revert changes past their expiry that no live run reverts; report ledger/tool drift.",
                             always_active=True),
}


class ScheduleError(ValueError):
    pass


def definition(name: str) -> ScheduleDef:
    try:
        return SCHEDULES[name]
    except KeyError:
        known = ", ".join(sorted(SCHEDULES)) or "none"
        raise ScheduleError(f"There is no schedule named {name!r} (known: {known}).") from None


def interval(every: str) -> timedelta:
    """`--every` as a timedelta, or ScheduleError with one sentence (at least 10s)."""
    return _interval(every)


def _interval(every: str) -> timedelta:
    try:
        seconds = parse_duration(every)
    except ValueError as exc:
        raise ScheduleError(f"--every {exc}.") from None
    if seconds < 10:
        raise ScheduleError("--every must be at least 10s.")
    return timedelta(seconds=seconds)


def _schedule(d: ScheduleDef, settings: Settings, every: timedelta, paused: bool = False) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            d.workflow, d.argument(), id=f"{d.schedule_id}-run", task_queue=settings.task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(paused=paused, note=d.description),
    )


async def ensure(
    client: Client, settings: Settings, name: str, every: str | None = None, paused: bool = False
) -> str:
    """Create the schedule if absent (paused if asked); with `every`, set its interval."""
    d = definition(name)
    interval = _interval(every or d.every)
    try:
        await client.create_schedule(d.schedule_id, _schedule(d, settings, interval, paused=paused))
        return "created"
    except ScheduleAlreadyRunningError:
        if every is None:
            return "exists"

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = current.description.schedule
        schedule.spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)])
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(d.schedule_id).update(update)
    return "updated"


async def ensure_all(client: Client, settings: Settings, paused: bool = False) -> dict[str, str]:
    """Every schedule exists afterwards; new ones start paused if asked (existing ones keep their state)."""
    return {name: await ensure(client, settings, name, paused=paused and not d.always_active)
            for name, d in SCHEDULES.items()}


async def pause(client: Client, name: str, paused: bool = True) -> None:
    handle = client.get_schedule_handle(definition(name).schedule_id)
    await _exists(handle, name)
    if paused:
        await handle.pause(note="paused with handrail schedule")
    else:
        await handle.unpause(note="resumed with handrail schedule")


async def trigger(client: Client, name: str) -> None:
    handle = client.get_schedule_handle(definition(name).schedule_id)
    await _exists(handle, name)
    await handle.trigger(overlap=ScheduleOverlapPolicy.SKIP)


async def show(client: Client, name: str) -> dict:
    handle = client.get_schedule_handle(definition(name).schedule_id)
    desc = await _exists(handle, name)
    spec = desc.schedule.spec
    every = spec.intervals[0].every.total_seconds() if spec.intervals else None
    return {
        "name": name,
        "schedule_id": handle.id,
        "workflow": definition(name).workflow,
        "every_seconds": every,
        "paused": desc.schedule.state.paused,
        "overlap": "skip",
        # a paused schedule runs nothing: Temporal still lists times, which would read as a lie
        "next_runs": [] if desc.schedule.state.paused else [t.isoformat() for t in desc.info.next_action_times[:3]],
        "recent_runs": [
            {"workflow_id": a.action.workflow_id, "started_at": a.started_at.isoformat()}
            for a in desc.info.recent_actions[-5:]
        ],
        "runs_total": desc.info.num_actions,
    }


async def _exists(handle, name: str):
    try:
        return await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ScheduleError(
                f"Schedule {name} does not exist yet; create it with `handrail schedule {name} --every 1m`."
            ) from None
        raise
