"""A step's audit rides with its check and its apply and is written in their ledger
transactions; when either activity fails before it gets there, the audit is still written
(`activities/gate.py`): a failed step never loses what the workflow recorded about it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.context import WorkerContext
from activities.gate import GateActivities
from handrail.gate.ledger import Ledger
from handrail.gate.models import ApplyIntent, ApplyRequest, AuditEvent, Change, CheckRequest, Mode
from lab.testing import in_process_lab
from tests.support import make_policy, with_test_keys

pytestmark = pytest.mark.integration


def rode_along(step: str) -> list[AuditEvent]:
    at = datetime.now(timezone.utc)
    return [AuditEvent(id=f"run-1:{step}:{i}", at=at, run_id="run-1", step_id=step, event=name, data={})
            for i, name in enumerate(("step.requested", "approval.decided"))]


async def test_a_failed_check_or_apply_still_writes_the_audit_that_rode_along(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(with_test_keys(make_policy(mode="guarded")))
    async with in_process_lab(tmp_path / "home", HANDRAIL_POLICY=str(policy)) as lab:
        ledger = Ledger(lab.settings.ledger_path)
        gate = GateActivities(WorkerContext.build(lab.settings, lab.tools, ledger))
        env = ActivityEnvironment()

        # the CMDB is down: the guardrail facts fail
        await lab.tools.lab_set_fault("/cmdb/*", error_rate=1.0, error_status=503)
        with pytest.raises(ApplicationError, match="looking up ws-0042 failed"):
            await env.run(gate.check_step, CheckRequest(
                run_id="run-1", step_id="s01-edr.isolate",
                change=Change(kind="edr.isolate", target="ws-0042"), audit=rode_along("s01-edr.isolate")))

        # the same, for a check asked to apply the step (no person need decide it)
        with pytest.raises(ApplicationError, match="looking up ws-0043 failed"):
            await env.run(gate.check_step, CheckRequest(
                run_id="run-1", step_id="s03-edr.isolate",
                change=Change(kind="edr.isolate", target="ws-0043"), audit=rode_along("s03-edr.isolate"),
                apply=ApplyIntent(idempotency_key="run-1/s03-edr.isolate", requested_by="alice")))

        with pytest.raises(ApplicationError) as unknown:
            await env.run(gate.apply_change, ApplyRequest(
                run_id="run-1", step_id="s02-no.such", change=Change(kind="no.such_kind", target="x"),
                idempotency_key="run-1/s02-no.such", mode=Mode.GUARDED, requested_by="alice",
                audit=rode_along("s02-no.such")))
        assert unknown.value.type == "UnknownAction" and unknown.value.non_retryable

        written = [(row["step_id"], row["event"]) for row in ledger.audit_rows("run-1")]
        assert written == [("s01-edr.isolate", "step.requested"), ("s01-edr.isolate", "approval.decided"),
                           ("s03-edr.isolate", "step.requested"), ("s03-edr.isolate", "approval.decided"),
                           ("s02-no.such", "step.requested"), ("s02-no.such", "approval.decided")]
        assert ledger.change("run-1/s02-no.such") is None and ledger.change("run-1/s03-edr.isolate") is None
        assert ledger.verify().ok
        ledger.close()
