"""SIEM: watchlists for users and hosts, and event search."""

from __future__ import annotations

from typing import Literal, Protocol

from handrail.tools.http import LabHTTP, ToolModel, seg

WatchKind = Literal["user", "host"]


class WatchEntry(ToolModel):
    kind: WatchKind
    value: str
    reason: str = ""
    added_at: str


class SiemEvent(ToolModel):
    id: str
    at: str
    source: str
    user: str | None = None
    host: str | None = None
    src_ip: str | None = None
    severity: str = "info"
    action: str = ""
    dest: str | None = None
    message: str = ""


class Siem(Protocol):
    async def watchlist(self, kind: WatchKind | None = None) -> list[WatchEntry]: ...
    async def get_watch(self, kind: WatchKind, value: str) -> WatchEntry | None: ...
    async def watch(self, kind: WatchKind, value: str, *, reason: str = "",
                    idempotency_key: str | None = None) -> WatchEntry: ...
    async def unwatch(self, kind: WatchKind, value: str, *,
                      idempotency_key: str | None = None) -> None: ...
    async def search_events(self, q: str = "", *, limit: int = 100) -> list[SiemEvent]: ...
    async def ingest(self, source: str, message: str, *, severity: str = "info", action: str = "",
                     idempotency_key: str | None = None) -> SiemEvent: ...


class LabSiem:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def watchlist(self, kind: WatchKind | None = None) -> list[WatchEntry]:
        data = await self.http.json("GET", "/siem/watchlist", params={"kind": kind})
        return [WatchEntry.model_validate(e) for e in data["entries"]]

    async def get_watch(self, kind: WatchKind, value: str) -> WatchEntry | None:
        data = await self.http.get_or_none(f"/siem/watchlist/{seg(kind)}/{seg(value)}")
        return WatchEntry.model_validate(data) if data is not None else None

    async def watch(self, kind: WatchKind, value: str, *, reason: str = "",
                    idempotency_key: str | None = None) -> WatchEntry:
        data = await self.http.json("POST", "/siem/watchlist",
                                    json={"kind": kind, "value": value, "reason": reason},
                                    idempotency_key=idempotency_key)
        return WatchEntry.model_validate(data)

    async def unwatch(self, kind: WatchKind, value: str, *,
                      idempotency_key: str | None = None) -> None:
        await self.http.request("DELETE", f"/siem/watchlist/{seg(kind)}/{seg(value)}",
                                idempotency_key=idempotency_key)

    async def search_events(self, q: str = "", *, limit: int = 100) -> list[SiemEvent]:
        data = await self.http.json("GET", "/siem/events", params={"q": q, "limit": limit})
        return [SiemEvent.model_validate(e) for e in data["events"]]

    async def ingest(self, source: str, message: str, *, severity: str = "info", action: str = "",
                     idempotency_key: str | None = None) -> SiemEvent:
        """Append an event to the SIEM's log (Handrail's signed audit checkpoints go here)."""
        data = await self.http.json("POST", "/siem/events", idempotency_key=idempotency_key,
                                    json={"source": source, "message": message, "severity": severity,
                                          "action": action})
        return SiemEvent.model_validate(data)
