"""Patient, visible tool calls for the step gate (issue 15, item 2).

An approved containment must not be lost because a firewall rebooted. The gate therefore
calls `apply_change` in rounds: each round is one activity with a few quick attempts; when
a round ends with a retryable error, the *workflow* records it (run state
`waiting_for_tool`, the last error and the next attempt in the status and the step's note),
sleeps with exponential backoff on a durable timer and tries again, until the policy's
`tool_retry` for the action kind is used up. Past `tool_alert_after` it raises one alert,
not one per attempt. A non-retryable error (a 4xx: the tool's definite answer) ends at once.

Doing the waiting in workflow code keeps it deterministic and visible through the status
query, and a worker killed mid-wait resumes the same schedule from history.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

ROUND_OPTS = dict(
    start_to_close_timeout=timedelta(seconds=60),
    heartbeat_timeout=timedelta(seconds=10),  # a killed worker's attempt is retried in seconds
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                             maximum_attempts=3),
)
FIRST_PAUSE = timedelta(seconds=5)
LONGEST_PAUSE = timedelta(minutes=5)


def retryable(err: ActivityError) -> bool:
    """False for a tool's definite answer (non-retryable application error), else True."""
    cause = err.cause
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return not cause.non_retryable
        cause = getattr(cause, "cause", None)
    return True  # timeouts, a worker gone: the outcome is unknown, try again


def root_message(err: BaseException) -> str:
    cause: Any = err
    while getattr(cause, "cause", None) is not None:
        cause = cause.cause
    return str(cause) or type(cause).__name__


async def call_patiently(rb: Any, step: Any, policy: Any, activity: Any, request: Any) -> Any:
    """Run `activity(request)` until it succeeds, fails definitely, or `tool_retry_s` runs out.

    `rb` is the Runbook (status, audit, alert, state); `step` the StepRecord shown to people.
    """
    from handrail.gate.models import RunState

    deadline = workflow.now() + timedelta(seconds=policy.tool_retry_s)
    first_failure = None
    pause = FIRST_PAUSE
    alerted = False
    attempt = 0
    while True:
        attempt += 1
        try:
            result = await workflow.execute_activity_method(activity, request, **ROUND_OPTS)
        except ActivityError as err:
            now = workflow.now()
            message = root_message(err)
            if not retryable(err) or now + pause > deadline:
                if first_failure is not None:
                    rb.status.summary.pop("waiting_for_tool", None)
                    rb.audit("tool.gave_up", step.step_id, attempts=attempt, error=message,
                             retryable=retryable(err))
                raise
            first_failure = first_failure or now
            next_at = now + pause
            step.note = f"waiting for tool: {message}; next attempt at {next_at.isoformat(timespec='seconds')}"
            rb.status.summary["waiting_for_tool"] = {
                "step_id": step.step_id, "last_error": message, "attempts": attempt,
                "next_attempt_at": next_at.isoformat(), "since": first_failure.isoformat(),
                "gives_up_at": deadline.isoformat(),
            }
            rb._set_state(RunState.WAITING_FOR_TOOL)
            if attempt == 1:
                rb.audit("tool.waiting", step.step_id, error=message, gives_up_at=deadline.isoformat())
            waited = (now - first_failure).total_seconds()
            if not alerted and waited + pause.total_seconds() >= policy.tool_alert_after_s:
                alerted = True
                try:
                    await rb.alert(
                        policy.alert_priority, f"Tool failing for {step.change.describe()}",
                        f"Run {rb.run_id} has retried {step.change.describe()} since {first_failure.isoformat()}: "
                        f"{message}. Handrail keeps retrying until {deadline.isoformat()}.",
                        tags=["tool", "retrying"],
                    )
                except ActivityError as alert_err:  # the alert is a courtesy; the change goes on
                    rb.audit("alert.failed", step.step_id, error=root_message(alert_err))
            await workflow.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)
            continue
        if first_failure is not None:
            rb.status.summary.pop("waiting_for_tool", None)
            rb.audit("tool.recovered", step.step_id, attempts=attempt)
            rb._set_state(RunState.RUNNING)
            step.note = ""
        return result
