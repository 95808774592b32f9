"""Threat-intel feeds over TAXII 2.1, beside the HTTP lists the intel sync already reads.

A TAXII collection is a feed named `taxii:<collection title or id>` in format `stix`:
fetching it pages through the collection's indicators (`match[type]=indicator`, the
server's `next` token while `more` is true, and `added_after` from the
`X-TAXII-Date-Added-Last` header for servers that page by time only) and returns them as
one STIX 2.1 bundle, byte-identical for the same indicators, so the intel sync's content
cache and "last good" fallback work unchanged. Every other feed name goes to the HTTP
feed server (the lab's client). TAXII feeds are read-only here: publishing is refused.

The server is not trusted to end its paging: pages that bring nothing new while `more`
stays true, and an oversized `next` token, are errors, every answer's body is capped
(`max_page_bytes`, read as it streams), and reading a collection has `deadline` seconds in
all; a page is decoded in a thread, off the worker's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import httpx

from handrail.ops.tools_config import TaxiiIntel as TaxiiConfig
from handrail.tools.errors import Invalid, NotFound, ToolError, Unauthorized, Unavailable
from handrail.tools.http import LabHTTP, seg
from handrail.tools.intel import FeedFormat, FeedInfo
from handrail.tools.journal import Journal

PREFIX = "taxii:"
TAXII_JSON = "application/taxii+json;version=2.1"
MAX_PAGES = 10_000
MAX_STALE_PAGES = 3  # a server may reuse its `next` token (medallion does); it may not repeat its pages
MAX_TOKEN = 2048  # characters of a `next` token or an `added_after` value sent back to the server
MAX_NAME = 256  # characters of a collection's id or title


def _listed(envelope: Any, key: str, path: str) -> list:
    """``envelope[key]`` of a TAXII answer (absent or null: empty). A server's answer is
    hostile input: anything but an object holding a list there is a ToolError, so the
    feed fails alone with a sentence instead of failing the sync with a TypeError."""
    listed = envelope.get(key) if isinstance(envelope, dict) else None
    if not isinstance(envelope, dict) or not isinstance(listed, list | None):
        raise ToolError(f"The TAXII server answered {path} with something that is not a TAXII envelope.",
                        code="bad_response")
    return listed or []


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _readable_collection(c: Any) -> bool:
    """A collection entry Handrail can name a feed after: a text id and title of at most
    MAX_NAME characters (they go into paths, feed names, errors and the sync's history), and
    a description that is text when present. Other entries are skipped."""
    return isinstance(c, dict) and _text(c.get("id")) and all(
        isinstance(c.get(k), str | None) for k in ("title", "description")) and all(
        len(c.get(k) or "") <= MAX_NAME for k in ("id", "title"))


class TaxiiIntel:
    def __init__(self, cfg: TaxiiConfig, http_feeds: Any, journal: Journal | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.cfg = cfg
        self.http_feeds = http_feeds if cfg.http_feeds else None
        root = cfg.api_root if cfg.api_root.endswith("/") else cfg.api_root + "/"
        headers = {"Accept": TAXII_JSON}
        auth = None
        secret = ""
        if cfg.token:
            headers["Authorization"] = f"Bearer {cfg.token}"
            secret = cfg.token
        elif cfg.username:
            auth = httpx.BasicAuth(cfg.username, cfg.password)
            secret = cfg.password
        self._client = httpx.AsyncClient(base_url=root, headers=headers, auth=auth, timeout=cfg.timeout,
                                         verify=cfg.verify, transport=transport)
        self.http = LabHTTP(self._client, secret=secret)

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- TAXII -------------------------------------------------------------------------------
    async def collections(self) -> list[dict]:
        try:
            data = await self.http.json("GET", "collections/", max_bytes=self.cfg.max_page_bytes)
        except NotFound:
            raise NotFound(f"There is no TAXII API root at {self.http.base_url}.", status=404) from None
        listed = _listed({} if data is None else data, "collections", "collections/")
        found = [c for c in listed if _readable_collection(c)]
        if self.cfg.collections:
            wanted = set(self.cfg.collections)
            found = [c for c in found if c["id"] in wanted or c.get("title") in wanted]
        return found

    async def _collection(self, name: str) -> dict:
        key = name[len(PREFIX):]
        for c in await self.collections():
            if key in (c["id"], c.get("title")):
                if not c.get("can_read", False):
                    raise Unauthorized(f"The TAXII collection {key} cannot be read with these credentials.",
                                       status=403)
                return c
        raise NotFound(f"There is no readable TAXII collection {key}.", status=404)

    async def indicators(self, collection_id: str) -> list[dict]:
        path = f"collections/{seg(collection_id)}/objects/"
        objects: dict[tuple[str, str], dict] = {}
        params: dict[str, Any] = {"match[type]": "indicator", "limit": self.cfg.page_size}
        stale = 0  # pages in a row that brought no object not seen before
        for _ in range(MAX_PAGES):
            resp = await self.http.request("GET", path, params=params, max_bytes=self.cfg.max_page_bytes)
            try:
                envelope = await asyncio.to_thread(json.loads, resp.content) if resp.content else {}
            except ValueError:
                raise ToolError(f"The TAXII server answered {path} with something that is not JSON.",
                                code="bad_response") from None
            except RecursionError:
                raise ToolError(f"The TAXII server answered {path} with JSON nested too deeply to read.",
                                code="bad_response") from None
            page = [o for o in _listed(envelope, "objects", path) if isinstance(o, dict) and _text(o.get("id"))]
            before = len(objects)
            for obj in page:
                modified = obj.get("modified")
                objects[(obj["id"], modified if isinstance(modified, str) else "")] = obj
            if len(objects) > self.cfg.max_objects:
                raise Invalid(f"The TAXII collection {collection_id} holds more than {self.cfg.max_objects} "
                              "indicators (tools.intel.max_objects).", status=422)
            if not envelope.get("more") or not page:
                break
            if _text(envelope.get("next")):
                token = ("next", envelope["next"])
            elif resp.headers.get("X-TAXII-Date-Added-Last"):
                token = ("added_after", resp.headers["X-TAXII-Date-Added-Last"])
            else:
                raise ToolError(f"The TAXII server said there is more in {collection_id} but gave no way to "
                                "ask for it.", code="bad_response")
            if len(token[1]) > MAX_TOKEN:
                raise ToolError(f"The TAXII server gave a {token[0]} value for {collection_id} longer than "
                                f"{MAX_TOKEN} characters.", code="bad_response")
            stale = 0 if len(objects) > before else stale + 1
            if stale >= MAX_STALE_PAGES:
                raise ToolError(f"The TAXII server sent {stale} pages of {collection_id} in a row with nothing new "
                                "and still says there is more; its paging does not end.", code="bad_response")
            params = {"match[type]": "indicator", "limit": self.cfg.page_size, token[0]: token[1]}
        else:
            raise ToolError(f"The TAXII collection {collection_id} did not end within {MAX_PAGES} pages.",
                            code="bad_response")
        return [objects[k] for k in sorted(objects)]

    def bundle(self, collection_id: str, objects: list[dict]) -> bytes:
        bundle_id = uuid.uuid5(uuid.NAMESPACE_URL, self.http.base_url + "/" + collection_id)
        try:
            return json.dumps({"type": "bundle", "id": f"bundle--{bundle_id}", "objects": objects},
                              sort_keys=True, separators=(",", ":")).encode()
        except RecursionError:  # read at the edge of the decoder's depth, one level too deep to write
            raise ToolError(f"The TAXII collection {collection_id} holds objects nested too deeply to "
                            "pass on.", code="bad_response") from None

    # -- the Intel protocol ------------------------------------------------------------------
    async def list_feeds(self) -> list[FeedInfo]:
        feeds = await self.http_feeds.list_feeds() if self.http_feeds is not None else []
        for c in await self.collections():
            if c.get("can_read", False):
                feeds.append(FeedInfo(name=PREFIX + (c.get("title") or c["id"]), format="stix",
                                      description=c.get("description") or f"TAXII 2.1 collection {c['id']}",
                                      sha256="", size=0))
        return feeds

    def _http(self, name: str):
        if self.http_feeds is None:
            raise NotFound(f"There is no feed {name}: only TAXII collections (taxii:<name>) are configured.",
                           status=404)
        return self.http_feeds

    async def feed_info(self, name: str) -> FeedInfo:
        if not name.startswith(PREFIX):
            return await self._http(name).feed_info(name)
        body = await self.fetch_feed(name)
        c = await self._collection(name)
        return FeedInfo(name=name, format="stix", description=c.get("description") or "", size=len(body),
                        sha256=hashlib.sha256(body).hexdigest(), lines=0)

    async def fetch_feed(self, name: str) -> bytes:
        if not name.startswith(PREFIX):
            return await self._http(name).fetch_feed(name)
        try:
            async with asyncio.timeout(self.cfg.deadline):
                c = await self._collection(name)
                objects = await self.indicators(c["id"])
        except TimeoutError:
            raise Unavailable(f"Reading the TAXII collection {name[len(PREFIX):]} did not finish within "
                              f"{self.cfg.deadline:g} s.", code="timeout") from None
        return await asyncio.to_thread(self.bundle, c["id"], objects)

    async def publish_feed(self, name: str, content: bytes | str, *, format: FeedFormat | None = None,
                           idempotency_key: str | None = None) -> FeedInfo:
        if name.startswith(PREFIX):
            raise Invalid(f"{name} is a TAXII collection; Handrail only reads those.", status=422)
        return await self._http(name).publish_feed(name, content, format=format, idempotency_key=idempotency_key)

    async def delete_feed(self, name: str, *, idempotency_key: str | None = None) -> None:
        if name.startswith(PREFIX):
            raise Invalid(f"{name} is a TAXII collection; Handrail only reads those.", status=422)
        await self._http(name).delete_feed(name, idempotency_key=idempotency_key)
