"""Threat-intel feed server: named feeds in their native formats (ipset/netset plain
lists, CSV, STIX 2.1 JSON). Feeds are data, never destinations."""

from __future__ import annotations

from typing import Literal, Protocol

from handrail.tools.http import LabHTTP, ToolModel, seg

FeedFormat = Literal["ipset", "netset", "csv", "stix"]


class FeedInfo(ToolModel):
    name: str
    format: FeedFormat
    description: str = ""
    sha256: str
    size: int
    lines: int = 0


class Intel(Protocol):
    async def list_feeds(self) -> list[FeedInfo]: ...
    async def feed_info(self, name: str) -> FeedInfo: ...
    async def fetch_feed(self, name: str) -> bytes: ...
    async def publish_feed(self, name: str, content: bytes | str, *,
                           format: FeedFormat | None = None,
                           idempotency_key: str | None = None) -> FeedInfo: ...
    async def delete_feed(self, name: str, *, idempotency_key: str | None = None) -> None: ...


class LabIntel:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def list_feeds(self) -> list[FeedInfo]:
        data = await self.http.json("GET", "/intel/feeds")
        return [FeedInfo.model_validate(f) for f in data["feeds"]]

    async def feed_info(self, name: str) -> FeedInfo:
        return FeedInfo.model_validate(
            await self.http.json("GET", f"/intel/feeds/{seg(name)}/info"))

    async def fetch_feed(self, name: str) -> bytes:
        return (await self.http.request("GET", f"/intel/feeds/{seg(name)}")).content

    async def publish_feed(self, name: str, content: bytes | str, *,
                           format: FeedFormat | None = None,
                           idempotency_key: str | None = None) -> FeedInfo:
        body = content.encode() if isinstance(content, str) else content
        data = await self.http.json("PUT", f"/intel/feeds/{seg(name)}", content=body,
                                    params={"format": format},
                                    headers={"Content-Type": "application/octet-stream"},
                                    idempotency_key=idempotency_key)
        return FeedInfo.model_validate(data)

    async def delete_feed(self, name: str, *, idempotency_key: str | None = None) -> None:
        await self.http.request("DELETE", f"/intel/feeds/{seg(name)}",
                                idempotency_key=idempotency_key)
