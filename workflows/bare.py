"""The yardstick for `handrail bench runbooks`: a bare workflow that runs one no-op activity.

It lives here, with nothing imported but Temporal, so the sandbox validates it as cheaply
as any real runbook and the comparison measures the gate, not the imports.
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
