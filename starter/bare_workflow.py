"""The yardstick for `handrail bench runbooks`: the cheapest workflow Temporal can run.

One no-op activity, in a module of its own that imports nothing but `temporalio`, outside
the `workflows` package: the sandbox re-imports only this file for each run, so the bare
run pays nothing it need not. The gate's cost is measured against this, not against a
workflow that shares the gate's import path (that would hide import costs on both sides).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def bench_noop(value: int) -> int:
    return value


@workflow.defn(name="BenchBare")
class BenchBare:
    @workflow.run
    async def run(self, value: int) -> int:
        return await workflow.execute_activity(
            "bench_noop", value, result_type=int, start_to_close_timeout=timedelta(seconds=30)
        )
