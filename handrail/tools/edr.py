"""EDR: endpoint agents — host facts, telemetry level, scans, isolation, forensic
collection, packet capture and indicator (proliferation) search."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import Field

from handrail.tools.http import LabHTTP, ToolModel, seg

TelemetryLevel = Literal["normal", "elevated", "verbose"]


class Isolation(ToolModel):
    reason: str = ""
    at: str


class Host(ToolModel):
    hostname: str
    ip: str | None = None
    mac: str | None = None
    os: str = ""
    type: str = ""
    vendor: str = ""
    owner: str | None = None
    network: str = ""
    tags: list[str] = Field(default_factory=list)
    role: str | None = None
    telemetry: TelemetryLevel = "normal"
    isolated: bool = False
    isolation: Isolation | None = None


class ScanResult(ToolModel):
    host: str
    verdict: Literal["clean", "compromised"]
    indicators: list[str] = Field(default_factory=list)
    scanned_at: str


class Artefact(ToolModel):
    id: str
    host: str
    kind: str
    case_id: str | None = None
    size: int = 0
    sha256: str = ""
    collected_at: str


class Capture(ToolModel):
    id: str
    host: str
    case_id: str
    filter: str = ""
    duration_s: int | None = None
    started_at: str


class CaptureStopped(ToolModel):
    stopped: str
    artefact: Artefact


class Sighting(ToolModel):
    hostname: str
    owner: str | None = None
    kind: str
    first_seen: str
    last_seen: str
    count: int


class Edr(Protocol):
    async def list_hosts(self, *, owner: str | None = None, tag: str | None = None,
                         isolated: bool | None = None) -> list[Host]: ...
    async def get_host(self, host: str) -> Host: ...
    async def set_telemetry(self, host: str, level: TelemetryLevel, *,
                            idempotency_key: str | None = None) -> Host: ...
    async def scan(self, host: str, *, idempotency_key: str | None = None) -> ScanResult: ...
    async def isolate(self, host: str, *, reason: str = "",
                      idempotency_key: str | None = None) -> Host: ...
    async def release(self, host: str, *, idempotency_key: str | None = None) -> Host: ...
    async def collect_memory(self, host: str, *, case_id: str | None = None,
                             idempotency_key: str | None = None) -> Artefact: ...
    async def collect_disk(self, host: str, *, case_id: str | None = None,
                           idempotency_key: str | None = None) -> Artefact: ...
    async def get_artefact(self, artefact_id: str) -> Artefact: ...
    async def start_capture(self, host: str, case_id: str, *, filter: str = "",
                            duration_s: int | None = None,
                            idempotency_key: str | None = None) -> Capture: ...
    async def get_capture(self, host: str) -> Capture | None: ...
    async def stop_capture(self, host: str, *,
                           idempotency_key: str | None = None) -> CaptureStopped: ...
    async def search(self, indicator: str) -> list[Sighting]: ...


class LabEdr:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def list_hosts(self, *, owner: str | None = None, tag: str | None = None,
                         isolated: bool | None = None) -> list[Host]:
        data = await self.http.json("GET", "/edr/hosts",
                                    params={"owner": owner, "tag": tag, "isolated": isolated})
        return [Host.model_validate(h) for h in data["hosts"]]

    async def get_host(self, host: str) -> Host:
        return Host.model_validate(await self.http.json("GET", f"/edr/hosts/{seg(host)}"))

    async def set_telemetry(self, host: str, level: TelemetryLevel, *,
                            idempotency_key: str | None = None) -> Host:
        data = await self.http.json("PUT", f"/edr/hosts/{seg(host)}/telemetry",
                                    json={"level": level}, idempotency_key=idempotency_key)
        return Host.model_validate(data)

    async def scan(self, host: str, *, idempotency_key: str | None = None) -> ScanResult:
        data = await self.http.json("POST", f"/edr/hosts/{seg(host)}/scan",
                                    idempotency_key=idempotency_key)
        return ScanResult.model_validate(data)

    async def isolate(self, host: str, *, reason: str = "",
                      idempotency_key: str | None = None) -> Host:
        data = await self.http.json("POST", f"/edr/hosts/{seg(host)}/isolate",
                                    json={"reason": reason}, idempotency_key=idempotency_key)
        return Host.model_validate(data)

    async def release(self, host: str, *, idempotency_key: str | None = None) -> Host:
        data = await self.http.json("POST", f"/edr/hosts/{seg(host)}/release",
                                    idempotency_key=idempotency_key)
        return Host.model_validate(data)

    async def _collect(self, host: str, kind: str, case_id: str | None,
                       idempotency_key: str | None) -> Artefact:
        data = await self.http.json("POST", f"/edr/hosts/{seg(host)}/collect",
                                    json={"kind": kind, "case_id": case_id},
                                    idempotency_key=idempotency_key)
        return Artefact.model_validate(data)

    async def collect_memory(self, host: str, *, case_id: str | None = None,
                             idempotency_key: str | None = None) -> Artefact:
        return await self._collect(host, "memory", case_id, idempotency_key)

    async def collect_disk(self, host: str, *, case_id: str | None = None,
                           idempotency_key: str | None = None) -> Artefact:
        return await self._collect(host, "disk", case_id, idempotency_key)

    async def get_artefact(self, artefact_id: str) -> Artefact:
        return Artefact.model_validate(
            await self.http.json("GET", f"/edr/artefacts/{seg(artefact_id)}"))

    async def start_capture(self, host: str, case_id: str, *, filter: str = "",
                            duration_s: int | None = None,
                            idempotency_key: str | None = None) -> Capture:
        data = await self.http.json(
            "POST", f"/edr/hosts/{seg(host)}/capture",
            json={"case_id": case_id, "filter": filter, "duration_s": duration_s},
            idempotency_key=idempotency_key)
        return Capture.model_validate(data)

    async def get_capture(self, host: str) -> Capture | None:
        # An unknown host is an error, not "no capture": check the host first.
        await self.get_host(host)
        data = await self.http.get_or_none(f"/edr/hosts/{seg(host)}/capture")
        return Capture.model_validate(data) if data is not None else None

    async def stop_capture(self, host: str, *,
                           idempotency_key: str | None = None) -> CaptureStopped:
        data = await self.http.json("DELETE", f"/edr/hosts/{seg(host)}/capture",
                                    idempotency_key=idempotency_key)
        return CaptureStopped.model_validate(data)

    async def search(self, indicator: str) -> list[Sighting]:
        data = await self.http.json("GET", "/edr/search", params={"indicator": indicator})
        return [Sighting.model_validate(h) for h in data["hosts"]]
