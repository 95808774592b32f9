"""Threat-intel feed server: named feeds in their native formats (ipset/netset plain
lists, CSV, STIX 2.1 JSON). Feeds are data, never destinations.

The server is not trusted either: a feed body is read as it streams and refused past
`MAX_FEED_BYTES` (decoded), the download has `FEED_DEADLINE` seconds in all, however slowly
the server drips, and an HTML page (a login or captive portal answering 200) is an error,
never a feed that lists nothing. Each is a `ToolError`, so the sync keeps the feed's last
good content."""

from __future__ import annotations

from typing import Literal, Protocol

from handrail.tools.errors import ToolError
from handrail.tools.http import LabHTTP, ToolModel, seg

FeedFormat = Literal["ipset", "netset", "csv", "stix"]
MAX_FEED_BYTES = 256 * 1024 * 1024
FEED_DEADLINE = 120.0  # seconds; under the sync's 5-minute feed activity timeout
_HTML = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")


def html_page(content_type: str, body: bytes) -> bool:
    """True for an HTML (or XHTML/XML) page, by its Content-Type or its first bytes."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        return True
    return body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith(_HTML)


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
    def __init__(self, http: LabHTTP, *, max_bytes: int = MAX_FEED_BYTES,
                 deadline: float = FEED_DEADLINE) -> None:
        self.http = http
        self.max_bytes, self.deadline = max_bytes, deadline

    async def list_feeds(self) -> list[FeedInfo]:
        data = await self.http.json("GET", "/intel/feeds")
        return [FeedInfo.model_validate(f) for f in data["feeds"]]

    async def feed_info(self, name: str) -> FeedInfo:
        return FeedInfo.model_validate(
            await self.http.json("GET", f"/intel/feeds/{seg(name)}/info"))

    async def fetch_feed(self, name: str) -> bytes:
        path = f"/intel/feeds/{seg(name)}"
        resp = await self.http.request("GET", path, max_bytes=self.max_bytes, deadline=self.deadline)
        if html_page(resp.headers.get("content-type", ""), resp.content):
            raise ToolError(f"GET {path} answered with an HTML page, not the feed (a login or captive "
                            "portal?).", status=resp.status_code, code="bad_response", retryable=False)
        return resp.content

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
