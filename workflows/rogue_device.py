"""Runbook: rogue devices (a guardrail around what plugs into the network).

1. Read what NAC saw and what the CMDB knows; an unknown or malformed MAC ends the run
   `rejected`. A device in the CMDB, or an unregistered one of a provisioned type and
   vendor, needs nothing.
2. Otherwise take it off the network (`nac.disconnect`, guarded: a device on a protected
   network segment holds for a human, and a mass of disconnects in an hour holds too),
   raise a SOC alert and open a case.
3. Recommit: wait (policy `nac.recommit_device`, 24 h by default) for an analyst to declare
   it legitimate (`handrail approve RUN --as YOU`): it is reconnected, and registered
   in the CMDB when the approval's reason asks for it (contains the word "register").
"""

from __future__ import annotations

import re

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.rogue import RogueActivities
    from handrail.gate.models import Change, RunStatus, StepRecord, StepState
    from handrail.runbooks.rogue import (
        RUNBOOK,
        NacPoll,
        RogueFacts,
        RogueTrigger,
        rogue_run_id,
    )
    from handrail.shown import YOU

from workflows.cases import open_case
from workflows.gate import TOOL_OPTS, Rejected, Runbook, RunbookWorkflow
from workflows.poller import PollReport, start_runs

REGISTER = re.compile(r"\bregister\b", re.IGNORECASE)


@workflow.defn(name="RogueDevice")
class RogueDevice(RunbookWorkflow):
    @workflow.run
    async def run(self, trigger: RogueTrigger) -> RunStatus:
        async with self.runbook(RUNBOOK, trigger.requested_by, subject=trigger.mac, trigger=trigger) as rb:
            facts: RogueFacts = await rb.look(RogueActivities.rogue_facts, trigger)
            if facts.problem:
                raise Rejected(f"{facts.problem}; nothing was changed")
            await self._respond(rb, facts)
        return rb.report()

    async def _respond(self, rb: Runbook, facts: RogueFacts) -> None:
        summary = rb.status.summary
        rb.status.subject = facts.mac
        summary.update(mac=facts.mac, device=facts.describe(), network=facts.network, cmdb_id=facts.cmdb_id)
        if facts.cmdb_id:
            summary["outcome"] = f"known device ({facts.cmdb_id} in the CMDB); nothing to do"
            return
        if not facts.rogue:
            summary["outcome"] = "not in the CMDB, but of a provisioned type and vendor; nothing to do"
            return
        summary["why_rogue"] = facts.why_rogue()

        disconnect = await rb.change(
            Change(kind="nac.disconnect", target=facts.mac,
                   params={"reason": f"rogue device ({facts.why_rogue()}); Handrail run {rb.run_id}",
                           "network": facts.network}),
            abort_on_deny=False,
            protective=True,
        )
        summary["disconnect"] = disconnect.state.value
        outcome = _disconnect_outcome(disconnect, facts)
        summary["outcome"] = outcome
        _, case = await open_case(rb, f"Rogue device {facts.mac} on {facts.network}",
                                  f"{facts.describe()}: {facts.why_rogue()}. {outcome}.", abort_on_deny=False)
        case_id = case.case_id
        applied = disconnect.state == StepState.APPLIED
        await rb.alert(
            "P2", f"Rogue device {'disconnected' if applied else 'found'}: {facts.vendor} {facts.type} {facts.mac}",
            f"{facts.describe()}: {facts.why_rogue()}.\n{outcome}. Case {case_id}.\n"
            + (f"If it is legitimate: handrail approve {rb.run_id} --as {YOU} "
               f"[--reason \"register\" to also register it in the CMDB]." if applied else "Review it by hand."),
            tags=["rogue-device", f"mac:{facts.mac}", f"network:{facts.network}", f"case:{case_id}"],
        )
        if not applied:
            return

        summary["recommit"] = "waiting for an analyst"
        recommit = await rb.change(Change(kind="nac.recommit_device", target=facts.mac), abort_on_deny=False)
        if recommit.state not in (StepState.APPLIED, StepState.UNCHANGED):
            summary["recommit"] = recommit.note
            summary["outcome"] = f"disconnected; the disconnection stands ({recommit.note})"
            await case.note(f"Disconnection stands: {recommit.note}.")
            return
        approvals = [d.decision for d in recommit.decisions if d.accepted and d.decision.approve]
        by = [d.approver for d in approvals]
        summary.update(recommit="reconnected", declared_legitimate_by=by)
        summary["outcome"] = f"disconnected, then reconnected as legitimate ({', '.join(by)})"
        if any(REGISTER.search(d.reason) for d in approvals):
            register = await rb.change(
                Change(kind="cmdb.register_device", target=facts.mac, params={
                    "hostname": facts.hostname or f"{facts.type or 'device'}-{facts.mac.replace(':', '')}",
                    "type": facts.type or "unknown", "vendor": facts.vendor or "unknown",
                    "network": facts.network or "unknown", "ip": facts.ip, "tags": "registered-by-handrail",
                }),
                abort_on_deny=False,
            )
            summary["registered"] = register.state.value
            if register.state in (StepState.APPLIED, StepState.UNCHANGED):
                summary["outcome"] += "; registered in the CMDB"
        await case.note(f"Declared legitimate by {', '.join(by)}; reconnected"
                        + ("; registered in the CMDB" if summary.get("registered") == "applied" else "") + ".")
        await rb.change(Change(kind="cases.close", target=rb.run_id, params={"resolution": "declared legitimate"}),
                        abort_on_deny=False)



def _disconnect_outcome(step: StepRecord, facts: RogueFacts) -> str:
    if step.state == StepState.APPLIED:
        return f"disconnected from {facts.network} (port {facts.port})"
    if step.state == StepState.UNCHANGED:
        return "NAC had already disconnected it; nothing to do"
    return f"not disconnected: {step.note}"


@workflow.defn(name="PollNacDevices")
class PollNacDevices:
    """Started by the `nac` schedule: one RogueDevice run per connected device the CMDB lacks."""

    @workflow.run
    async def run(self, poll: NacPoll) -> PollReport:
        triggers = await workflow.execute_activity_method(
            RogueActivities.new_nac_devices, poll, **TOOL_OPTS)
        return await start_runs("nac", RogueDevice.run, triggers, lambda t: rogue_run_id(t.mac), runbook=RUNBOOK)
