"""What `status` and `up` tell a person about the local stack, and how they exit.

`status` exits 1 when any component is down, so a script (or a person's `&&`) can trust
it; `up` on a stack that already runs and answers is not an error: it says so, shows the
status and the Web UI URL, and exits 0.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from starter.tables import print_rows, print_url


def all_healthy(info: dict[str, Any]) -> bool:
    components = info.get("components", {})
    return bool(components) and all(c.get("healthy") for c in components.values())


def down_components(info: dict[str, Any]) -> list[str]:
    return [name for name, c in info.get("components", {}).items() if not c.get("healthy")]


def _yes(value) -> str:
    return "[green]yes[/]" if value else "[red]no[/]"


def print_status(console: Console, info: dict[str, Any], workflows_url: str | None = None) -> None:
    rows = [(name, str(c.get("pid") or "-"), _yes(c.get("alive")), _yes(c.get("healthy")),
             str(c.get("url") or c.get("address") or ""))
            for name, c in info.get("components", {}).items()]
    print_rows(console, ("component", "pid", "alive", "healthy", "where"), rows)
    if workflows_url or info.get("ui_url"):
        print_url(console, "Web UI", workflows_url or info["ui_url"])
    down = down_components(info)
    if down:
        console.print(f"[red]Down[/]: {', '.join(down)} (logs in {info.get('home', '.')}/logs; "
                      "`handrail up --detach` starts the stack).", highlight=False)


async def schedule_states(client, names) -> dict[str, str]:
    """`active` or `paused` per schedule, as Temporal describes it; one it cannot describe is left out."""
    from handrail.ops.schedules import definition

    states = {}
    for name in names:
        try:
            desc = await client.get_schedule_handle(definition(name).schedule_id).describe()
        except Exception:  # not there after all, or Temporal busy: say nothing rather than guess
            continue
        states[name] = "paused" if desc.schedule.state.paused else "active"
    return states


def schedules_line(states: dict[str, str]) -> str:
    """What `up` prints about the schedules: each one's real state ("" when none could be read)."""
    active = sorted(n for n, s in states.items() if s == "active")
    paused = sorted(n for n, s in states.items() if s == "paused")
    parts = ([f"active: {', '.join(active)}"] if active else []) + (
        [f"paused: {', '.join(paused)} (handrail schedule NAME --unpause)"] if paused else [])
    return f"Schedules {'; '.join(parts)}" if parts else ""
