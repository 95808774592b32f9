"""`Preflight`: a short read-only workflow the CLI runs before it starts a runbook.

It exists so the check runs on the worker (which holds the tool credentials and the
authoritative policy) and not in the CLI. It changes nothing and audits nothing.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.preflight import PreflightActivities
    from handrail.gate.preflight import PreflightRequest, PreflightResult


@workflow.defn
class Preflight:
    @workflow.run
    async def run(self, request: PreflightRequest) -> PreflightResult:
        return await workflow.execute_activity_method(
            PreflightActivities.preflight_check, request,
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=RetryPolicy(maximum_attempts=2),
        )
