"""SOC alerting: raise, list and acknowledge alerts that page an analyst."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol

from pydantic import Field

from handrail.tools.http import LabHTTP, ToolModel, seg

Priority = Literal["P1", "P2", "P3", "P4"]


class Alert(ToolModel):
    id: str
    priority: Priority
    title: str
    body: str = ""
    source: str
    run_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    acknowledged: bool = False
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    raised_at: str


class Alerts(Protocol):
    async def raise_alert(self, priority: Priority, title: str, body: str, *, source: str,
                          run_id: str | None = None, tags: Iterable[str] = (),
                          idempotency_key: str | None = None) -> Alert: ...
    async def list_alerts(self) -> list[Alert]: ...
    async def get_alert(self, alert_id: str) -> Alert: ...
    async def acknowledge(self, alert_id: str, by: str, *,
                          idempotency_key: str | None = None) -> Alert: ...


class LabAlerts:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def raise_alert(self, priority: Priority, title: str, body: str, *, source: str,
                          run_id: str | None = None, tags: Iterable[str] = (),
                          idempotency_key: str | None = None) -> Alert:
        payload = {"priority": priority, "title": title, "body": body, "source": source,
                   "run_id": run_id, "tags": list(tags)}
        data = await self.http.json("POST", "/alerts", json=payload,
                                    idempotency_key=idempotency_key)
        return Alert.model_validate(data)

    async def list_alerts(self) -> list[Alert]:
        data = await self.http.json("GET", "/alerts")
        return [Alert.model_validate(a) for a in data["alerts"]]

    async def get_alert(self, alert_id: str) -> Alert:
        return Alert.model_validate(await self.http.json("GET", f"/alerts/{seg(alert_id)}"))

    async def acknowledge(self, alert_id: str, by: str, *,
                          idempotency_key: str | None = None) -> Alert:
        data = await self.http.json("POST", f"/alerts/{seg(alert_id)}/ack", json={"by": by},
                                    idempotency_key=idempotency_key)
        return Alert.model_validate(data)
