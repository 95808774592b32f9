"""Runbook: data exfiltration response — one run per DLP alert.

1. Intake: the alert, checked against the estate (a bad alert ends `rejected`).
2. Classify with the policy's rules (pure, in `handrail.runbooks.exfiltration`); no rule matches →
   the analyst question, which is the gate's approval of `exfiltration.classify_malicious`
   (approve = malicious, deny = inadvertent, no answer = settings' on_unclassified_timeout).
3. Inadvertent: enroll the user in the customer-data training module. Done.
4. Malicious: open a case, alert the SOC, raise the endpoint's monitoring, scan it.
5. Quarantine (scan says compromised): isolate through the gate, collect memory and disk
   images into the case, urgent alert.
6. Proliferation: search all endpoint telemetry for the scan's indicators, report each
   similar host into the case and start one follow-up run per host (capped).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.exfiltration import ExfiltrationActivities
    from handrail.gate.models import Change, RunStatus, StepState
    from handrail.runbooks.exfiltration import (
        CLASSIFY_KIND,
        DlpPoll,
        ExfilSettings,
        ExfiltrationTrigger,
        FollowUpTrigger,
        HostRequest,
        Intake,
        IntakeRequest,
        ScanFacts,
        SpreadRequest,
        alert_id_problem,
        classify,
        classify_as_begun,
        follow_up_id,
        run_id_for,
    )

from workflows.cases import CaseFile, open_case
from workflows.gate import READ_OPTS, Rejected, Runbook, RunbookWorkflow
from workflows.poller import PollReport, start_runs

DONE = (StepState.APPLIED, StepState.UNCHANGED)
# Runs begun since classify by the strict reading of a destination (every recipient trusted, or
# none); runs begun before replay the classification their release made (`classify_as_begun`).
STRICT_DESTINATION = "handrail-dlp-strict-destination"


def _path(rb: Runbook, line: str) -> None:
    """One sentence of the decision path (`handrail show` prints the summary)."""
    rb.status.summary.setdefault("decision_path", []).append(line)


async def contain_host(rb: Runbook, host: str, case: CaseFile, settings: ExfilSettings, why: str) -> ScanFacts:
    """Raise monitoring, scan, and — if compromised — isolate (gated), collect evidence, alert."""
    ttl = settings.monitoring_ttl_s()
    monitor = await rb.change(
        Change(kind="edr.set_telemetry", target=host, params={"level": settings.monitoring_level}),
        expires_after=timedelta(seconds=ttl) if ttl else None,
    )
    await case.note(f"EDR telemetry on {host} raised to {settings.monitoring_level} ({monitor.state.value})")
    scan = await rb.look(ExfiltrationActivities.exfiltration_scan,
                         HostRequest(host=host, run_id=rb.run_id, case_id=case.case_id, key=f"{rb.run_id}/{host}"))
    rb.status.summary["scan"] = scan.model_dump(mode="json")
    _path(rb, f"scan of {host}: {scan.verdict}" + (f" ({len(scan.indicators)} indicators)" if scan.indicators else ""))
    if scan.verdict != "compromised":
        await case.note(f"{host} scanned clean: no quarantine")
        return scan

    step = await rb.change(
        Change(kind="edr.isolate", target=host, params={"reason": f"{why}; run {rb.run_id}"}),
        abort_on_deny=False,
    )
    isolated = step.state in DONE
    approvers = [d.decision.approver for d in step.decisions if d.accepted and d.decision.approve]
    holds = [v.reason for v in step.verdicts if v.outcome.value == "hold"]
    rb.status.summary["isolation"] = {
        "host": host, "state": step.state.value, "approved_by": approvers, "note": step.note, "holds": holds,
    }
    _path(rb, f"isolation of {host}: " + (f"approved by {', '.join(approvers)}" if isolated and approvers else
                                          step.state.value + (f" ({step.note})" if step.note else ""))
          + (f"; guardrail holds: {'; '.join(holds)}" if holds else ""))
    await case.note(f"Isolation of {host}: {step.state.value}. {step.note}".strip())

    evidence = await rb.record(ExfiltrationActivities.exfiltration_collect_evidence,
                             HostRequest(host=host, run_id=rb.run_id, case_id=case.case_id,
                                         key=f"{rb.run_id}/{host}/evidence"),
                               what=f"memory and disk images of {host} into case {case.case_id}",
                               timeout=timedelta(minutes=10))
    rb.status.summary.setdefault("evidence", []).append(evidence.model_dump(mode="json"))
    await rb.alert(
        "P1", f"Compromised host {host} ({'isolated' if isolated else 'NOT isolated'})",
        f"Run {rb.run_id}: EDR scan of {host} found {', '.join(scan.indicators)}. Isolation: {step.state.value}"
        f"{' — ' + step.note if step.note else ''}. Memory image {evidence.memory}, disk image {evidence.disk}"
        f"{', case ' + case.case_id if case.case_id else ''}.",
        tags=["exfiltration", "compromise", host],
    )
    return scan


@workflow.defn(name="ExfiltrationResponse")
class ExfiltrationResponse(RunbookWorkflow):
    @workflow.run
    async def run(self, trigger: ExfiltrationTrigger) -> RunStatus:
        async with self.runbook("exfiltration", trigger.requested_by, subject=trigger.alert_id, trigger=trigger) as rb:
            problem = alert_id_problem(trigger.alert_id)
            if problem:
                raise Rejected(problem + "; nothing was changed")
            intake = await rb.look(ExfiltrationActivities.exfiltration_intake,
                                   IntakeRequest(alert_id=trigger.alert_id, run_id=rb.run_id))
            if intake.problems or intake.alert is None:
                raise Rejected("; ".join(intake.problems) + "; nothing was changed")
            alert, settings = intake.alert, intake.settings
            rb.status.summary["alert"] = alert.model_dump(mode="json")
            rb.status.summary["history"] = intake.history.model_dump(mode="json")

            verdict, by, why = await self._classify(rb, intake)
            rb.status.summary["classification"] = {"verdict": verdict, "by": by, "why": why}
            rb.audit("exfiltration.classified", alert=alert.id, user=alert.user, host=alert.host,
                     verdict=verdict, by=by, why=why)

            if verdict == "inadvertent":
                step = await rb.change(Change(
                    kind="training.enroll", target=alert.user,
                    params={"module": settings.training_module,
                            "reason": f"DLP {alert.id}: {alert.detector} via {alert.channel} ({alert.file_name})"},
                ))
                rb.status.summary["training"] = {"user": alert.user, "module": settings.training_module,
                                                 "state": step.state.value}
                _path(rb, f"{alert.user} enrolled in {settings.training_module} ({step.state.value}); "
                          "no analyst involved")
            else:
                await self._malicious(rb, intake)
            await rb.change(Change(kind="dlp.mark_processed", target=alert.id,
                                   params={"outcome": f"{verdict} ({by}); run {rb.run_id}"}))
        return rb.report()

    async def _classify(self, rb: Runbook, intake: Intake) -> tuple[str, str, str]:
        alert, settings = intake.alert, intake.settings
        if workflow.patched(STRICT_DESTINATION):
            result = classify(settings.rules, alert, intake.history, settings.own_domains)
        else:  # begun before: the verdict and the question it came to then (a replay must not differ)
            result = classify_as_begun(settings, alert, intake.history)
        if result.verdict != "analyst":
            _path(rb, f"{result.verdict} by {result.why}")
            return result.verdict, "rule", result.why
        _path(rb, f"unclassified ({result.why}): asking an analyst — approve = malicious, deny = inadvertent")
        step = await rb.change(
            Change(kind=CLASSIFY_KIND, target=alert.id, params={
                "question": "Is this DLP alert malicious? Approve = malicious (investigate, scan, quarantine); "
                            "deny = inadvertent (training only).",
                "user": alert.user, "host": alert.host, "channel": alert.channel, "detector": alert.detector,
                "file": alert.file_name, "destination": alert.destination, "why_asked": result.why,
            }),
            abort_on_deny=False,
        )
        deciders = [d.decision.approver for d in step.decisions if d.accepted]
        if not deciders:  # nobody answered in time (escalation included)
            verdict = settings.on_unclassified_timeout
            why = f"the analyst question timed out; on_unclassified_timeout is {verdict}"
            _path(rb, f"{verdict}: {why}")
            return verdict, "timeout", why
        if step.state in DONE:
            why = f"classified malicious by {', '.join(deciders)}"
            _path(rb, why)
            return "malicious", "analyst", why
        denial = next((d for d in step.decisions if d.accepted and not d.decision.approve), None)
        why = f"classified inadvertent by {', '.join(deciders)}" + (f": {denial.decision.reason}" if denial else "")
        _path(rb, why)
        return "inadvertent", "analyst", why

    async def _malicious(self, rb: Runbook, intake: Intake) -> None:
        alert, settings = intake.alert, intake.settings
        _, case = await open_case(
            rb, f"Suspected data exfiltration: {alert.user} ({alert.id})",
            f"DLP {alert.id}: {alert.detector} via {alert.channel} from {alert.host} — {alert.file_name} "
            f"to {alert.destination}. Handled by Handrail run {rb.run_id}.",
        )
        case_id = case.case_id
        classification = rb.status.summary["classification"]
        await case.note(f"Classified malicious ({classification['by']}): {classification['why']}")
        await rb.alert("P2", f"Suspected data exfiltration by {alert.user} ({alert.id})",
                       f"Run {rb.run_id}: {alert.detector} via {alert.channel} from {alert.host}, file "
                       f"{alert.file_name} to {alert.destination}. Case {case_id}.",
                       tags=["exfiltration", alert.id])
        scan = await contain_host(rb, alert.host, case, settings, f"DLP {alert.id}")
        if scan.verdict == "compromised" and scan.indicators:
            await self._proliferation(rb, alert.id, alert.host, scan.indicators, case, settings)

    async def _proliferation(self, rb: Runbook, alert_id: str, host: str, indicators: list[str], case: CaseFile,
                             settings: ExfilSettings) -> None:
        spread = await rb.look(ExfiltrationActivities.exfiltration_proliferation, SpreadRequest(
            indicators=indicators, exclude=[host], case_id=case.case_id, key=f"{rb.run_id}/spread"),
            timeout=timedelta(minutes=5))
        found = [h.hostname for h in spread.hosts]
        rb.status.summary["similar_hosts"] = found
        capped, rest = spread.hosts[: settings.max_follow_ups], spread.hosts[settings.max_follow_ups:]
        triggers = [FollowUpTrigger(host=h.hostname, parent_run=rb.run_id, parent_alert=alert_id,
                                    case_id=case.case_id, indicators=h.indicators,
                                    requested_by=rb.status.requested_by) for h in capped]
        report: PollReport = await start_runs("proliferation", ExfiltrationFollowUp.run, triggers,
                                              lambda t: follow_up_id(t.parent_alert, t.host))
        rb.status.summary["follow_up_runs"] = report.started + report.already
        rb.status.summary["follow_ups_not_started"] = [h.hostname for h in rest]
        _path(rb, f"proliferation: {len(found)} similar host(s) saw the indicators; {len(report.started)} follow-up "
                  f"run(s) started" + (f", {len(rest)} over the cap of {settings.max_follow_ups} (reported only)"
                                       if rest else ""))
        await case.note(f"Proliferation search over {spread.indicators_searched} indicators found "
                        f"{', '.join(found) or 'no other host'}; follow-up runs: "
                        f"{', '.join(report.started + report.already) or 'none'}"
                        + (f"; not started (cap {settings.max_follow_ups}): {', '.join(h.hostname for h in rest)}"
                           if rest else ""))


@workflow.defn(name="ExfiltrationFollowUp")
class ExfiltrationFollowUp(RunbookWorkflow):
    """A similarly attacked device: monitor, scan and (gated) quarantine it; no further search."""

    @workflow.run
    async def run(self, trigger: FollowUpTrigger) -> RunStatus:
        async with self.runbook("exfiltration-follow-up", trigger.requested_by, subject=trigger.host) as rb:
            rb.status.summary["parent_run"] = trigger.parent_run
            rb.status.summary["parent_alert"] = trigger.parent_alert
            rb.status.summary["case_id"] = trigger.case_id
            facts = await rb.look(ExfiltrationActivities.exfiltration_host,
                                  HostRequest(host=trigger.host, run_id=rb.run_id))
            if not facts.known:
                raise Rejected(facts.problem + "; nothing was changed")
            settings = await rb.look(ExfiltrationActivities.exfiltration_settings, rb.run_id)
            _path(rb, f"{trigger.host} saw {', '.join(trigger.indicators)} like the host of {trigger.parent_alert}")
            case = CaseFile(rb, trigger.case_id)
            await case.note(f"Follow-up run {rb.run_id} for {trigger.host} started")
            await contain_host(rb, trigger.host, case, settings,
                               f"indicators of {trigger.parent_alert} seen on {trigger.host}")
        return rb.report()


@workflow.defn(name="PollDlp")
class PollDlp:
    """Started by the `dlp` schedule: one exfiltration run per new DLP alert."""

    @workflow.run
    async def run(self, poll: DlpPoll) -> PollReport:
        triggers = await workflow.execute_activity_method(
            ExfiltrationActivities.exfiltration_new_alerts, poll, **READ_OPTS)
        return await start_runs("dlp", ExfiltrationResponse.run, triggers, lambda t: run_id_for(t.alert_id),
                                runbook="exfiltration")
