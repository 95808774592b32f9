"""`handrail schedule NAME`: show, retime, pause, resume or trigger one of Handrail's schedules."""

from __future__ import annotations

from typing import Optional

from handrail.ops import schedules
from handrail.ops.config import load_settings
from handrail.ops.temporal import connect
from starter.output import USAGE, CliError, console, fail, print_json


async def schedule_command(
    name: str,
    every: Optional[str],
    pause: bool,
    unpause: bool,
    trigger: bool,
    as_json: bool,
) -> None:
    if sum([bool(every), pause, unpause, trigger]) > 1:
        fail("Use one of --every, --pause, --unpause or --trigger at a time.", USAGE)
    if every:  # a bad interval is a usage error, found before Temporal is asked anything
        try:
            schedules.interval(every)
        except schedules.ScheduleError as exc:
            raise CliError(str(exc), USAGE) from None
    settings = load_settings()
    client = await connect(settings)
    try:
        if every:
            what = await schedules.ensure(client, settings, name, every)
        elif pause or unpause:
            await schedules.pause(client, name, paused=pause)
            what = "paused" if pause else "resumed"
        elif trigger:
            await schedules.trigger(client, name)
            what = "triggered"
        else:
            what = "shown"
        shown = await schedules.show(client, name)
    except schedules.ScheduleError as exc:
        raise CliError(str(exc), USAGE if "no schedule named" in str(exc) else 1) from None
    if as_json:
        print_json({"action": what, **shown})
        return
    state = "paused" if shown["paused"] else "active"
    console.print(f"Schedule [bold]{name}[/] ({shown['workflow']}) {what}: every {shown['every_seconds']:g}s, {state}.")
    if shown["next_runs"]:
        console.print("Next: " + ", ".join(shown["next_runs"]))
    elif shown["paused"]:
        console.print(f"No next run while paused (handrail schedule {name} --unpause resumes it).")
    for run in shown["recent_runs"]:
        console.print(f" - {run['started_at']}  {run['workflow_id']}")

