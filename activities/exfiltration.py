"""The exfiltration runbook's side effects: read the DLP alert and the estate, keep the case
file, collect evidence, search telemetry for the scan's indicators.

These never decide anything: classification and every change to a security control
happen in the workflow and through the gate. The case file and evidence collection are
records, not controls, so they are plain activities (each call carries an idempotency key
derived from the run, so a retry adds nothing twice).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from pydantic import ValidationError
from temporalio import activity

from activities.context import WorkerContext
from activities.errors import policy_failure, tool_failure
from activities.ledger_io import off_loop
from activities.triggers import valid_only
from handrail.runbooks.exfiltration import (
    AlertFacts,
    DlpPoll,
    Evidence,
    ExfilSettings,
    ExfiltrationTrigger,
    History,
    HostFacts,
    HostRequest,
    Intake,
    IntakeRequest,
    ScanFacts,
    SettingsError,
    SimilarHost,
    Spread,
    SpreadRequest,
    alert_id_problem,
    check_policy,
)
from handrail.tools.errors import NotFound, ToolError


class ExfiltrationActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.settings, self.tools, self.ledger = ctx.settings, ctx.tools, ctx.ledger

    def _exfil_settings(self) -> ExfilSettings:
        try:
            return check_policy(self.ctx.policy())
        except SettingsError as exc:
            raise policy_failure(exc) from None

    # -- intake -----------------------------------------------------------------------------
    @activity.defn
    async def exfiltration_intake(self, request: IntakeRequest) -> Intake:
        """The alert, checked against the estate, plus the policy's rules and the user's history."""
        settings = self._exfil_settings()
        bad_id = alert_id_problem(request.alert_id)
        if bad_id:
            return Intake(problems=[bad_id], settings=settings)
        try:
            raw = await self.tools.dlp.get_alert(request.alert_id)
        except NotFound:
            return Intake(problems=[f"there is no DLP alert {request.alert_id}"], settings=settings)
        except ValidationError as exc:
            return Intake(problems=[f"DLP alert {request.alert_id} is malformed ({_first(exc)})"], settings=settings)
        except ToolError as exc:
            raise tool_failure(exc, f"reading DLP alert {request.alert_id} failed") from None
        problems: list[str] = []
        user = (raw.user or "").strip()
        host = (raw.host or "").strip()
        if not user:
            problems.append(f"DLP alert {raw.id} names no user")
        if not host:
            problems.append(f"DLP alert {raw.id} names no host")
        if not raw.channel.strip() or not raw.detector.strip():
            problems.append(f"DLP alert {raw.id} is malformed (no channel or detector)")
        try:
            if user:
                try:
                    await self.tools.iam.get_user(user)
                except NotFound:
                    problems.append(f"user {user} of DLP alert {raw.id} is unknown to IAM")
            tags: list[str] = []
            if host:
                try:
                    tags = list((await self.tools.edr.get_host(host)).tags)
                except NotFound:
                    problems.append(f"host {host} of DLP alert {raw.id} is unknown to the EDR")
        except ToolError as exc:
            raise tool_failure(exc, f"checking DLP alert {raw.id} failed") from None
        if problems:
            return Intake(problems=problems, settings=settings)
        alert = AlertFacts(
            id=raw.id, user=user, host=host, channel=raw.channel, detector=raw.detector,
            severity=raw.severity, file_name=raw.sample.file_name, destination=raw.sample.destination,
            match_count=raw.sample.match_count,
        )
        history = await off_loop(self._history, user, request.run_id, settings.history_days)
        return Intake(alert=alert, host_tags=tags, history=history, settings=settings)

    def _history(self, user: str, run_id: str, days: float) -> History:
        since = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat()
        rows = self.ledger.query("EXFIL_HISTORY", (since, user))
        alerts: dict[str, str] = {}
        for rid, body in rows:
            if rid == run_id:
                continue
            data = json.loads(body).get("data", {})
            alerts[str(data.get("alert"))] = str(data.get("verdict"))
        return History(
            prior_alerts=len(alerts),
            prior_malicious=sum(1 for v in alerts.values() if v == "malicious"),
            prior_alert_ids=sorted(alerts),
        )

    @activity.defn
    async def exfiltration_settings(self, run_id: str) -> ExfilSettings:
        """The validated `[settings.exfiltration]` (follow-up runs need no alert)."""
        return self._exfil_settings()

    @activity.defn
    async def exfiltration_host(self, request: HostRequest) -> HostFacts:
        try:
            host = await self.tools.edr.get_host(request.host)
        except NotFound:
            return HostFacts(host=request.host, known=False, problem=f"host {request.host} is unknown to the EDR")
        except ToolError as exc:
            raise tool_failure(exc, f"looking up {request.host} failed") from None
        return HostFacts(host=host.hostname, known=True, owner=host.owner, tags=list(host.tags))

    # -- investigation ------------------------------------------------------------------------
    @activity.defn
    async def exfiltration_scan(self, request: HostRequest) -> ScanFacts:
        """An EDR scan (read-only on the host); the result goes into the case file."""
        try:
            result = await self.tools.edr.scan(request.host, idempotency_key=f"{request.key}:scan")
            if request.case_id:
                text = (f"EDR scan of {request.host}: {result.verdict}"
                        + (f"; indicators: {', '.join(result.indicators)}" if result.indicators else ""))
                await self.tools.cases.add_note(request.case_id, "handrail", text,
                                                idempotency_key=f"{request.key}:scan-note")
        except ToolError as exc:
            raise tool_failure(exc, f"scanning {request.host} failed") from None
        return ScanFacts(host=request.host, verdict=result.verdict, indicators=list(result.indicators))

    @activity.defn
    async def exfiltration_collect_evidence(self, request: HostRequest) -> Evidence:
        """Memory and disk images (evidence: nothing to undo); their ids go into the case file."""
        try:
            memory = await self.tools.edr.collect_memory(request.host, case_id=request.case_id,
                                                         idempotency_key=f"{request.key}:memory")
            disk = await self.tools.edr.collect_disk(request.host, case_id=request.case_id,
                                                     idempotency_key=f"{request.key}:disk")
            if request.case_id:
                for art in (memory, disk):
                    await self.tools.cases.add_artefact(
                        request.case_id, f"{art.kind}-image", art.id,
                        description=f"{art.kind} image of {request.host} ({art.size} bytes, sha256 {art.sha256})",
                        idempotency_key=f"{request.key}:case-{art.kind}",
                    )
        except ToolError as exc:
            raise tool_failure(exc, f"collecting evidence from {request.host} failed") from None
        return Evidence(host=request.host, memory=memory.id, disk=disk.id)

    @activity.defn
    async def exfiltration_proliferation(self, request: SpreadRequest) -> Spread:
        """Every host whose telemetry saw one of the indicators (the scanned host excluded)."""
        found: dict[str, SimilarHost] = {}
        exclude = {h.lower() for h in request.exclude}
        try:
            for indicator in request.indicators:
                for sighting in await self.tools.edr.search(indicator):
                    if sighting.hostname.lower() in exclude:
                        continue
                    entry = found.setdefault(sighting.hostname,
                                             SimilarHost(hostname=sighting.hostname, owner=sighting.owner))
                    entry.indicators.append(indicator)
            hosts = sorted(found.values(), key=lambda h: h.hostname)
            if request.case_id:
                for host in hosts:
                    await self.tools.cases.add_artefact(
                        request.case_id, "similar-host", host.hostname,
                        description=f"{host.hostname} (owner {host.owner or 'unknown'}) saw "
                                    + ", ".join(host.indicators),
                        idempotency_key=f"{request.key}:similar-{host.hostname}",
                    )
        except ToolError as exc:
            raise tool_failure(exc, "searching endpoint telemetry failed") from None
        return Spread(indicators_searched=len(request.indicators), hosts=hosts)

    # -- intake from the DLP console ---------------------------------------------------------
    @activity.defn
    async def exfiltration_new_alerts(self, poll: DlpPoll) -> list[ExfiltrationTrigger]:
        """One trigger per new alert; a malformed alert still gets its run (which rejects it)."""
        try:
            try:
                ids = [a.id for a in await self.tools.dlp.list_alerts(status="new")]
            except ValidationError:  # one malformed alert must not hide the others
                raw = await self.tools.http.json("GET", "/dlp/alerts", params={"status": "new"})
                ids = [str(a["id"]) for a in raw.get("alerts", []) if isinstance(a, dict) and a.get("id")]
        except ToolError as exc:
            raise tool_failure(exc, "listing new DLP alerts failed") from None
        return valid_only(lambda i: ExfiltrationTrigger(alert_id=i, requested_by=poll.requested_by), ids[: poll.limit])



def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
