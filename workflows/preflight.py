"""`Preflight`: a short read-only workflow the CLI runs before it starts a runbook.

It exists so the check runs on the worker (which holds the tool credentials and the
authoritative policy) and not in the CLI. It changes nothing and audits nothing.

The CLI reads the answer through the `answer` update while the workflow still runs, then
deletes the execution: Temporal removes a running execution at once (a closed one only
later), so a refused or checked `handrail run` leaves nothing in the workflow list. A CLI
that dies before deleting it leaves a workflow that closes by itself after `KEEP_FOR`.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.preflight import PreflightActivities
    from handrail.gate.preflight import PreflightRequest, PreflightResult

KEEP_FOR = timedelta(seconds=60)


@workflow.defn
class Preflight:
    def __init__(self) -> None:
        self._result: PreflightResult | None = None
        self._failure = ""  # why the check could not run (the CLI then warns and starts the run)

    @workflow.run
    async def run(self, request: PreflightRequest) -> PreflightResult:
        try:
            self._result = await workflow.execute_activity_method(
                PreflightActivities.preflight_check, request,
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
        except ActivityError as err:
            cause: BaseException = err
            while getattr(cause, "cause", None) is not None:
                cause = cause.cause
            self._failure = str(cause) or type(cause).__name__
        try:  # wait for the CLI to read the answer and delete this execution
            await workflow.wait_condition(lambda: False, timeout=KEEP_FOR)
        except TimeoutError:
            pass
        if self._result is None:
            raise ApplicationError(self._failure, type="PreflightFailed", non_retryable=True)
        return self._result

    @workflow.update
    async def answer(self) -> PreflightResult:
        await workflow.wait_condition(lambda: self._result is not None or bool(self._failure))
        if self._result is None:
            raise ApplicationError(self._failure, type="PreflightFailed", non_retryable=True)
        return self._result
