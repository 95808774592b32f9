"""DLP console: the data-loss alert queue."""

from __future__ import annotations

from typing import Literal, Protocol

from handrail.tools.http import LabHTTP, ToolModel, seg

DlpStatus = Literal["new", "processed"]


class DlpSample(ToolModel):
    file_name: str = ""
    size: int = 0
    sha256: str = ""
    destination: str = ""
    match_count: int = 0


class DlpProcessing(ToolModel):
    by: str
    outcome: str = ""
    at: str


class DlpAlert(ToolModel):
    id: str
    user: str | None = None
    host: str | None = None
    channel: str
    detector: str
    severity: str = "medium"
    status: DlpStatus
    created_at: str
    sample: DlpSample
    processing: DlpProcessing | None = None


class Dlp(Protocol):
    async def list_alerts(self, status: DlpStatus | None = None) -> list[DlpAlert]: ...
    async def get_alert(self, alert_id: str) -> DlpAlert: ...
    async def mark_processed(self, alert_id: str, *, by: str, outcome: str = "",
                             idempotency_key: str | None = None) -> DlpAlert: ...
    async def reopen(self, alert_id: str, *, idempotency_key: str | None = None) -> DlpAlert: ...


class LabDlp:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def list_alerts(self, status: DlpStatus | None = None) -> list[DlpAlert]:
        data = await self.http.json("GET", "/dlp/alerts", params={"status": status})
        return [DlpAlert.model_validate(a) for a in data["alerts"]]

    async def get_alert(self, alert_id: str) -> DlpAlert:
        return DlpAlert.model_validate(await self.http.json("GET", f"/dlp/alerts/{seg(alert_id)}"))

    async def mark_processed(self, alert_id: str, *, by: str, outcome: str = "",
                             idempotency_key: str | None = None) -> DlpAlert:
        data = await self.http.json("POST", f"/dlp/alerts/{seg(alert_id)}/processed",
                                    json={"by": by, "outcome": outcome},
                                    idempotency_key=idempotency_key)
        return DlpAlert.model_validate(data)

    async def reopen(self, alert_id: str, *, idempotency_key: str | None = None) -> DlpAlert:
        data = await self.http.json("POST", f"/dlp/alerts/{seg(alert_id)}/reopen",
                                    idempotency_key=idempotency_key)
        return DlpAlert.model_validate(data)
