"""`handrail run intel-sync` and `handrail bench intel`.

    handrail run intel-sync [--requested-by NAME] [--wait] [--json]   one sync now
    handrail schedule intel --every 1h | --pause | --trigger | --show  the hourly schedule
    handrail bench intel --feeds 5 --indicators 1000000 [--repeat 3] [--json]

A manual sync's run id is `intel-sync-<UTC minute>`: asking twice in the same minute is
refused (the second would only repeat the first). Scheduled syncs are started by the
Temporal Schedule `handrail-intel` (overlap policy skip).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import typer

from starter.output import USAGE, command, console, fail, print_json


def manual_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"intel-sync-{now:%Y%m%dT%H%M}"


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    @run_app.command("intel-sync")
    @command
    async def run_intel_sync(
        requested_by: Optional[str] = typer.Option(
            None, "--requested-by",
            help="Check that the signing key (HANDRAIL_SIGNING_KEY or HANDRAIL_HOME/keys/USER_ed25519) "
                 "is this requester's; the request is signed."),
        wait: bool = typer.Option(False, "--wait", help="Wait for the run's outcome and print it."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    ):
        """Run one threat-intel sync now: feeds -> consensus -> proxy, EDL, IPS (inside guardrails)."""
        from handrail.intel.messages import IntelSyncTrigger
        from starter.common import _client, _settings, _started
        from workflows.intel_sync import IntelSync

        settings = _settings()
        client = await _client(settings)
        run_id = manual_run_id()
        from starter.start import start_run

        handle = await start_run(
            client, settings, IntelSync.run, lambda who: IntelSyncTrigger(requested_by=who, reason="manual sync"),
            run_id, requested_by=requested_by, runbook="intel-sync",
            duplicate="A sync already ran as {run_id} this minute (`handrail show {run_id}`).")
        await _started(client, settings, handle, wait, as_json)

    from starter.common import bench_group

    bench = bench_group(app)

    @bench.command("intel")
    @command
    def bench_intel(
        feeds: int = typer.Option(5, "--feeds", help="How many synthetic feeds."),
        indicators: int = typer.Option(1_000_000, "--indicators", help="Entry lines over all feeds."),
        repeat: int = typer.Option(3, "--repeat", help="Interleaved rounds; each contender reports its best."),
        seed: int = typer.Option(1, "--seed", help="Seed of the synthetic feeds."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    ):
        """The intel sync pass (parse, normalise, guard, consensus) against iprange and a sort floor."""
        from handrail.intel.bench import run_intel_bench

        if feeds < 1 or indicators < 1 or repeat < 1:
            fail("--feeds, --indicators and --repeat must be positive.", USAGE)
        report = run_intel_bench(feeds=feeds, indicators=indicators, seed=seed, repeat=repeat)
        if as_json:
            print_json(report)
            return
        for key, value in report.items():
            if key != "feed_files":
                console.print(f"{key}: {value}")
