"""Runbook: unauthorized privilege escalation (a guardrail around everyday IAM changes).

1. Read the IAM event and its facts; an unknown or malformed event ends the run `rejected`.
2. Only a principal gaining a privileged group matters; an approved change (a standing
   exception in the policy, or an approved change ticket for that moment) covers it.
3. Otherwise revert at once (`iam.revoke_privilege`, guarded; break-glass accounts are
   never reverted, and a mass of reverts in an hour holds for a human) and raise a SOC
   alert naming who, what, on which device and the revert (P1 for executives).
4. Recommit: wait (policy `iam.recommit_privilege`, 24 h by default) for an analyst to say
   the change was legitimate. The run's requester is the affected principal, so the gate
   refuses their own approval (separation of duties); an approval re-grants the exact
   membership, a denial or the timeout leaves the revert standing.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.privilege import PrivilegeActivities
    from handrail.gate.models import Change, RunStatus, StepRecord, StepState
    from handrail.runbooks.privilege import (
        RUNBOOK,
        IamPoll,
        MarkEventRequest,
        PrivilegeFacts,
        PrivilegeTrigger,
        privilege_run_id,
    )
    from handrail.shown import YOU

from workflows.gate import REQUESTER_KEY, TOOL_OPTS, Rejected, Runbook, RunbookWorkflow
from workflows.poller import PollReport, start_runs


@workflow.defn(name="PrivilegeGuard")
class PrivilegeGuard(RunbookWorkflow):
    @workflow.run
    async def run(self, trigger: PrivilegeTrigger) -> RunStatus:
        async with self.runbook(RUNBOOK, trigger.requested_by, subject=trigger.event_id, trigger=trigger) as rb:
            facts: PrivilegeFacts = await rb.look(PrivilegeActivities.privilege_facts, trigger)
            if facts.problem:
                raise Rejected(f"{facts.problem}; nothing was changed")
            self._the_affected_principal_requests(rb, facts)
            await self._guard(rb, facts)
        return rb.report()

    @staticmethod
    def _the_affected_principal_requests(rb: Runbook, facts: PrivilegeFacts) -> None:
        """The person whose privilege changed is the run's requester: they never decide on it."""
        started_by = rb.status.requested_by
        rb.status.requested_by = facts.principal
        rb.status.subject = f"{facts.principal} in {facts.group} ({facts.event_id})"
        workflow.upsert_search_attributes([REQUESTER_KEY.value_set(facts.principal)])
        rb.audit("run.requester_set", requested_by=facts.principal, started_by=started_by,
                 why="the affected principal may not approve the recommit of their own privilege")
        rb.status.summary.update(
            event_id=facts.event_id, principal=facts.principal, principal_type=facts.principal_type,
            group=facts.group, actor=facts.actor, at=facts.at, change_ticket=facts.change_ticket,
            devices=facts.devices, high_profile=facts.high_profile, started_by=started_by,
        )

    async def _guard(self, rb: Runbook, facts: PrivilegeFacts) -> None:
        summary = rb.status.summary
        if not facts.gained_privilege:
            what = "a removal" if facts.kind == "group_member_removed" else f"membership of {facts.group}"
            summary["outcome"] = f"not a privilege gain ({what}, privileged={facts.privileged}); nothing to do"
            return await self._mark(rb, facts, "no action: not a privilege gain")
        covered = facts.covered_by()
        if covered:
            summary["outcome"] = f"authorized by {covered}; nothing to do"
            summary["covered_by"] = covered
            return await self._mark(rb, facts, f"authorized by {covered}")

        summary["why_unauthorized"] = facts.why_not_covered()
        revert = await rb.change(
            Change(kind="iam.revoke_privilege", target=facts.principal,
                   params={"group": facts.group, "event_id": facts.event_id}),
            abort_on_deny=False,
            protective=True,
        )
        summary["revert"] = revert.state.value
        outcome = _revert_outcome(revert)
        summary["outcome"] = outcome
        await self._alert(rb, facts, revert, outcome)
        await self._mark(rb, facts, outcome)
        if revert.state != StepState.APPLIED:
            return

        summary["recommit"] = "waiting for an analyst"
        recommit = await rb.change(
            Change(kind="iam.recommit_privilege", target=facts.principal,
                   params={"group": facts.group, "event_id": facts.event_id}),
            abort_on_deny=False,
            excluded_deciders=(facts.actor,) if facts.actor else (),  # who granted it cannot bless it
        )
        if recommit.state in (StepState.APPLIED, StepState.UNCHANGED):
            by = _approvers(recommit)
            summary["recommit"] = "re-granted"
            summary["recommitted_by"] = by
            summary["outcome"] = (f"reverted, then re-granted {facts.group} to {facts.principal} "
                                  f"as legitimate ({', '.join(by)})")
        else:
            summary["recommit"] = recommit.note
            summary["outcome"] = f"reverted; the revert stands ({recommit.note})"

    async def _alert(self, rb: Runbook, facts: PrivilegeFacts, revert: StepRecord, outcome: str) -> None:
        who = f"{facts.principal_type} {facts.principal}"
        device = (f"the device {facts.principal}" if facts.principal_type == "device"
                  else ("the user's devices " + ", ".join(facts.devices) if facts.devices else "no device on record"))
        next_step = (
            f"If the change was legitimate, an analyst other than {facts.principal} approves the recommit: "
            f"handrail approve {rb.run_id} --as {YOU}. Otherwise the revert stands."
            if revert.state == StepState.APPLIED else "Review the membership by hand."
        )
        body = (
            f"Who: {who} (changed by {facts.actor} at {facts.at}, IAM event {facts.event_id}).\n"
            f"What: added to the privileged group {facts.group}; {facts.why_not_covered()}.\n"
            f"Device: {device}.\n"
            f"Revert: {outcome}.\n{next_step}"
        )
        tags = ["privilege-escalation", f"principal:{facts.principal}", f"group:{facts.group}",
                *(["executive"] if facts.high_profile else [])]
        priority = "P1" if facts.high_profile else "P2"
        rb.status.summary["alert_priority"] = priority
        await rb.alert(priority, f"Unauthorized privilege escalation: {facts.principal} added to {facts.group}",
                       body, tags=tags)

    @staticmethod
    async def _mark(rb: Runbook, facts: PrivilegeFacts, outcome: str) -> None:
        await workflow.execute_activity_method(
            PrivilegeActivities.mark_iam_event,
            MarkEventRequest(event_id=facts.event_id, outcome=outcome, idempotency_key=f"{rb.run_id}/mark-event"),
            **TOOL_OPTS,
        )


def _revert_outcome(step: StepRecord) -> str:
    group, who = step.change.params.get("group"), step.change.target
    if step.state == StepState.APPLIED:
        return f"reverted: {who} removed from {group}"
    if step.state == StepState.UNCHANGED:
        return f"{who} was no longer a member of {group}; nothing to revert"
    if any(v.guardrail == "never_touch" for v in step.verdicts):
        return f"not reverted: {who} is a break-glass account ({step.note})"
    return f"not reverted: {step.note}"


def _approvers(step: StepRecord) -> list[str]:
    return [d.decision.approver for d in step.decisions if d.accepted and d.decision.approve]


@workflow.defn(name="PollIamEvents")
class PollIamEvents:
    """Started by the `iam` schedule: one PrivilegeGuard run per new IAM event."""

    @workflow.run
    async def run(self, poll: IamPoll) -> PollReport:
        triggers = await workflow.execute_activity_method(
            PrivilegeActivities.new_iam_events, poll, **TOOL_OPTS)
        return await start_runs("iam", PrivilegeGuard.run, triggers, lambda t: privilege_run_id(t.event_id),
                                runbook=RUNBOOK)
