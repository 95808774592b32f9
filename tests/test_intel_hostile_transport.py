"""Hostile or broken feed servers, on a real socket: the feed and TAXII clients against
endless and lying bodies, compression bombs, drips, stalls, redirects, captive portals,
paging that never ends and servers that echo credentials back.

Every answer the clients cannot use must be a `ToolError` (the sync then keeps the feed's
last good content), quickly and with bounded memory, through both transports a feed is read
with: the tool clients' keep-alive transport (the HTTP feed server) and httpx's own (TAXII).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import pytest

from handrail.ops.tools_config import TaxiiIntel as TaxiiConfig
from handrail.tools import ToolClients
from handrail.tools.errors import ToolError, Unauthorized, Unavailable
from handrail.tools.http import LabHTTP
from handrail.tools.intel import LabIntel
from handrail.tools.intel_taxii import TaxiiIntel
from handrail.tools.keepalive import KeepAliveTransport

# `took` bounds are generous on purpose (a loaded CI box): each only shows that a call did not wait
# out a server that never finishes; the result code shows which cap or deadline ended it.
pytestmark = pytest.mark.unit

CAP = 1024 * 1024
TOKEN = "feed-api-key-5f1b2c9d"


class Server:
    """A socket server that hands each request (method, path, headers) and the writer to `handler`."""

    def __init__(self, handler):
        self.handler = handler
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        for task in list(self.tasks):
            task.cancel()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.add(asyncio.current_task())
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ")
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                self.requests.append((method, path, headers))
                if await self.handler(method, path, headers, writer) is not True:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def head(status: int = 200, **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def answer(writer, status: int, body: bytes, **headers: str) -> bool:
    writer.write(head(status, Content_Length=str(len(body)), **headers) + body)
    await writer.drain()
    return True


def feed_client(url: str, transport: str, **kw) -> tuple[LabIntel, httpx.AsyncClient]:
    client = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=1.0,
                               transport=KeepAliveTransport() if transport == "keepalive" else None)
    return LabIntel(LabHTTP(client, secret=TOKEN), **{"max_bytes": CAP, "deadline": 3.0, **kw}), client


async def fetch(handler, transport: str = "keepalive", **kw) -> tuple[bytes | ToolError, float, Server]:
    """The feed `x` from a server answering with `handler`: its body or the ToolError, and the seconds taken."""
    async with Server(handler) as server:
        intel, client = feed_client(server.url, transport, **kw)
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(intel.fetch_feed("x"), 20)  # the test's own guard, far above
        except ToolError as exc:
            result = exc
        finally:
            await client.aclose()
        return result, time.monotonic() - started, server


TRANSPORTS = ["keepalive", "httpx"]


# -- size ---------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("framing", ["close", "chunked"])
async def test_an_endless_body_is_refused_at_the_cap_while_it_streams(transport, framing):
    sent = 0

    async def endless(method, path, headers, writer):
        nonlocal sent
        writer.write(head(200, Content_Type="text/plain",
                          **({"Transfer_Encoding": "chunked"} if framing == "chunked" else {})))
        line = b"203.0.113.7\n" * 5000
        while True:
            writer.write(b"%x\r\n%s\r\n" % (len(line), line) if framing == "chunked" else line)
            sent += len(line)
            await writer.drain()

    result, took, _ = await fetch(endless, transport)
    assert isinstance(result, ToolError) and result.code == "too_large" and not result.retryable, result
    assert f"more than {CAP} bytes" in str(result)
    assert sent < 40 * CAP and took < 20  # stopped while streaming, not after buffering it all


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_declared_length_over_the_cap_is_refused_before_the_body(transport):
    async def huge(method, path, headers, writer):
        writer.write(head(200, Content_Length=str(10 ** 12)) + b"1.2.3.4\n")
        await writer.drain()
        await asyncio.sleep(30)

    result, took, _ = await fetch(huge, transport)
    assert isinstance(result, ToolError) and result.code == "too_large", result
    assert took < 20


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_length_longer_than_the_body_is_an_unavailable_server_not_a_short_feed(transport):
    async def short(method, path, headers, writer):
        writer.write(head(200, Content_Length="1000") + b"1.2.3.4\n")
        await writer.drain()
        return False  # and close

    result, _, _ = await fetch(short, transport)
    assert isinstance(result, Unavailable), result


def _gzip_bomb(size: int) -> bytes:
    return gzip.compress(b"\0" * size, compresslevel=9)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("encoding,body", [
    ("gzip", _gzip_bomb(64 * CAP)),
    ("deflate", zlib.compress(b"\0" * 64 * CAP, 9)),
    ("deflate", zlib.compress(b"\0" * 64 * CAP, 9)[2:-4]),  # raw deflate, as some servers send it
])
async def test_a_decompression_bomb_is_refused_at_the_cap(transport, encoding, body):
    assert len(body) < CAP  # small on the wire: only the decoded size can catch it

    async def bomb(method, path, headers, writer):
        return await answer(writer, 200, body, Content_Encoding=encoding, Content_Type="text/plain")

    result, took, _ = await fetch(bomb, transport)
    assert isinstance(result, ToolError) and result.code == "too_large", result
    assert took < 20


STACKED = gzip.compress(_gzip_bomb(16 * CAP))  # "gzip, gzip": the ratios multiply


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("encoding", ["gzip, gzip", "br", "zstd", "compress"])
async def test_stacked_or_unbounded_encodings_are_refused(transport, encoding):
    async def stacked(method, path, headers, writer):
        return await answer(writer, 200, STACKED, Content_Encoding=encoding)

    result, _, server = await fetch(stacked, transport)
    assert isinstance(result, ToolError) and result.code == "bad_response", result
    assert server.requests[0][2]["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_gzipped_feed_under_the_cap_is_read(transport):
    feed = b"".join(b"198.51.100.%d\n" % i for i in range(200))

    async def ok(method, path, headers, writer):
        return await answer(writer, 200, gzip.compress(feed), Content_Encoding="gzip", Content_Type="text/plain")

    result, _, _ = await fetch(ok, transport)
    assert result == feed


CORRUPT_GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 20  # a gzip header, then no valid block


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_does_not_decode_is_a_tool_error(transport, encoding):
    async def corrupt(method, path, headers, writer):
        return await answer(writer, 200, CORRUPT_GZIP, Content_Encoding=encoding)

    result, _, _ = await fetch(corrupt, transport)
    assert isinstance(result, ToolError) and result.code == "bad_response", result


async def test_a_corrupt_body_on_any_tool_call_is_a_tool_error():
    """Not an httpx exception the activity would not expect: every tool call, not only feeds."""
    async def corrupt(method, path, headers, writer):
        return await answer(writer, 200, CORRUPT_GZIP, Content_Encoding="gzip",
                            Content_Type="application/json")

    async with Server(corrupt) as server:
        intel, client = feed_client(server.url, "keepalive")
        try:
            with pytest.raises(ToolError) as exc:
                await intel.list_feeds()
        finally:
            await client.aclose()
    assert exc.value.code == "bad_response"


async def test_a_million_tiny_chunks_count_their_framing_against_the_cap():
    async def tiny(method, path, headers, writer):
        writer.write(head(200, Transfer_Encoding="chunked"))
        for _ in range(200_000):  # 200 KB of data, 1.2 MB on the wire
            writer.write(b"1\r\n1\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    result, took, _ = await fetch(tiny, "keepalive", max_bytes=CAP)
    assert isinstance(result, ToolError) and result.code == "too_large", result
    assert took < 20


# -- time ---------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_server_that_drips_meets_the_deadline(transport):
    async def drip(method, path, headers, writer):
        writer.write(head(200, Content_Type="text/plain", Transfer_Encoding="chunked"))
        while True:  # always within the per-read timeout, never done
            writer.write(b"1\r\n1\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)

    result, took, _ = await fetch(drip, transport, deadline=0.8)
    assert isinstance(result, Unavailable) and result.code == "timeout" and result.retryable, result
    assert 0.7 < took < 20


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("sent", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n1.2.3.4\n"])
async def test_a_server_that_never_answers_or_stalls_mid_body_is_unavailable(transport, sent):
    async def stall(method, path, headers, writer):
        writer.write(sent)
        await writer.drain()
        await asyncio.sleep(30)

    result, took, _ = await fetch(stall, transport)
    assert isinstance(result, Unavailable) and result.code == "timeout", result
    assert took < 20


# -- redirects, status codes, content types ----------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status,location", [
    (302, "http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
    (301, "http://127.0.0.1:{other}/intel/feeds/x"),
    (307, "https://user:pw@evil.example/feed?sig=abc"),
    (302, "/intel/feeds/x"),  # a loop to itself
    (308, "http://[fe80::1]/"),
])
async def test_a_redirect_is_an_error_and_never_followed(transport, status, location):
    async with Server(lambda m, p, h, w: answer(w, 200, b"6.6.6.6\n")) as other:
        async def redirect(method, path, headers, writer):
            return await answer(writer, status, b"<html>moved</html>", Location=location.format(other=other.port),
                                Content_Type="text/html")

        result, _, server = await fetch(redirect, transport)
        assert isinstance(result, ToolError) and result.code == "redirected" and not result.retryable, result
        assert len(server.requests) == 1 and other.requests == []  # not followed: the key went nowhere
        assert "pw" not in str(result) and "sig=" not in str(result)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", [304, 300])
async def test_a_3xx_without_a_location_is_not_an_empty_feed(transport, status):
    result, _, _ = await fetch(lambda m, p, h, w: answer(w, status, b""), transport)
    assert isinstance(result, ToolError) and result.code == "redirected", result


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("content_type,body", [
    ("text/html; charset=utf-8", b"<p>Please accept the terms of use</p>"),
    ("text/plain", b"\n  <!DOCTYPE html><html><body>Hotel WiFi login</body></html>"),
    ("", b"<html><head><title>Sign in</title></head></html>"),
])
async def test_a_captive_portal_page_is_an_error_not_an_empty_feed(transport, content_type, body):
    headers = {"Content_Type": content_type} if content_type else {}
    result, _, _ = await fetch(lambda m, p, h, w: answer(w, 200, body, **headers), transport)
    assert isinstance(result, ToolError) and result.code == "bad_response" and not result.retryable, result
    assert "HTML page" in str(result)


# -- secrets ------------------------------------------------------------------------------
async def test_an_error_echoing_the_credentials_never_carries_them():
    """A server (or a proxy in front of it) that echoes the request's headers into its error."""
    async def echo(method, path, headers, writer):
        body = json.dumps({"error": f"denied for Authorization: {headers['authorization']} " + "x" * 5000})
        return await answer(writer, 401, body.encode(), Content_Type="application/json")

    async with Server(echo) as server:
        cfg = TaxiiConfig(backend="taxii", api_root=server.url + "/api/", http_feeds=False, username="handrail",
                          password="s3cret-taxii-pass")
        intel = TaxiiIntel(cfg, None)
        try:
            with pytest.raises(Unauthorized) as exc:
                await intel.fetch_feed("taxii:t")
        finally:
            await intel.aclose()
    basic = base64.b64encode(b"handrail:s3cret-taxii-pass").decode()
    assert server.requests[0][2]["authorization"] == f"Basic {basic}"  # it was sent, and echoed
    message = str(exc.value)
    assert basic not in message and "s3cret" not in message and "***" in message
    assert len(message) < 400  # a server's error text is one short sentence in history and the audit

    async with Server(echo) as server:  # a bearer token (the HTTP feed server's) likewise
        tools = ToolClients(httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}),
                            token=TOKEN)
        try:
            with pytest.raises(Unauthorized) as exc:
                await tools.intel.fetch_feed("x")
        finally:
            await tools._client.aclose()
    assert TOKEN not in str(exc.value)


# -- TAXII --------------------------------------------------------------------------------
COLLECTIONS = {"collections": [{"id": "c1", "title": "t", "can_read": True}]}


def indicator(i: int) -> dict:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{i:08d}-0000-4000-8000-000000000000",
            "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z",
            "pattern": f"[ipv4-addr:value = '203.0.113.{i % 250}']", "pattern_type": "stix",
            "valid_from": "2026-01-01T00:00:00Z"}


async def taxii(objects_handler, collections: dict = COLLECTIONS, **cfg) -> tuple[bytes | ToolError, float, Server]:
    async def handler(method, path, headers, writer):
        if path.endswith("/collections/"):
            return await answer(writer, 200, json.dumps(collections).encode(),
                                Content_Type="application/taxii+json;version=2.1")
        return await objects_handler(path, writer)

    async with Server(handler) as server:
        intel = TaxiiIntel(TaxiiConfig(backend="taxii", api_root=server.url + "/api/", http_feeds=False,
                                       timeout=2.0, **cfg), None)
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(intel.fetch_feed("taxii:t"), 30)
        except ToolError as exc:
            result = exc
        finally:
            await intel.aclose()
        return result, time.monotonic() - started, server


async def test_taxii_paging_that_repeats_its_pages_stops_at_once():
    async def forever(path, writer):
        page = {"more": True, "next": "same", "objects": [indicator(1)]}
        return await answer(writer, 200, json.dumps(page).encode())

    result, took, server = await taxii(forever)
    assert isinstance(result, ToolError) and result.code == "bad_response", result
    assert "nothing new" in str(result) and len(server.requests) <= 5 and took < 20


async def test_taxii_paging_with_a_new_token_forever_meets_the_deadline():
    n = 0

    async def forever(path, writer):
        nonlocal n
        n += 1
        page = {"more": True, "next": f"token-{n}", "objects": [indicator(n)]}  # new, and never done
        return await answer(writer, 200, json.dumps(page).encode())

    result, took, _ = await taxii(forever, deadline=0.5)
    assert isinstance(result, Unavailable) and result.code == "timeout", result
    assert took < 20


async def test_taxii_an_added_after_that_does_not_move_stops():
    async def stuck(path, writer):
        page = {"more": True, "objects": [indicator(1)]}
        return await answer(writer, 200, json.dumps(page).encode(), X_TAXII_Date_Added_Last="2026-01-01T00:00:00Z")

    result, _, server = await taxii(stuck)
    assert isinstance(result, ToolError) and "nothing new" in str(result), result
    assert len(server.requests) <= 5


async def test_taxii_a_huge_next_token_is_refused():
    async def huge(path, writer):
        page = {"more": True, "next": "n" * 100_000, "objects": [indicator(1)]}
        return await answer(writer, 200, json.dumps(page).encode())

    result, _, server = await taxii(huge)
    assert isinstance(result, ToolError) and "longer than" in str(result), result
    assert len(server.requests) == 2  # collections, one page; the token never went back


async def test_taxii_an_envelope_with_a_million_objects_is_refused_by_its_size():
    one = json.dumps({"id": "indicator--x", "type": "indicator"}).encode()
    body = b'{"more": false, "objects": [' + b",".join([one] * 1_000_000) + b"]}"

    async def million(path, writer):
        return await answer(writer, 200, body)

    result, took, _ = await taxii(million, max_page_bytes=4 * CAP)
    assert isinstance(result, ToolError) and result.code == "too_large", result
    assert took < 20


async def test_taxii_a_server_that_drips_meets_the_deadline():
    async def drip(path, writer):
        writer.write(head(200, Transfer_Encoding="chunked"))
        while True:
            writer.write(b"1\r\n \r\n")
            await writer.drain()
            await asyncio.sleep(0.2)

    result, took, _ = await taxii(drip, deadline=0.8)
    assert isinstance(result, Unavailable) and result.code == "timeout", result
    assert took < 20


async def test_taxii_a_collection_with_a_huge_id_is_skipped():
    """Its id would go into every path, error and the sync's history."""
    huge = {"collections": [{"id": "c" * 100_000, "title": "t", "can_read": True}]}
    result, _, server = await taxii(lambda path, writer: answer(writer, 200, b"{}"), huge)
    assert isinstance(result, ToolError) and result.code == "not_found" and len(str(result)) < 200, result
    assert len(server.requests) == 1


async def test_taxii_a_redirect_is_an_error_not_an_empty_collection():
    async def moved(path, writer):
        return await answer(writer, 302, b"", Location="http://169.254.169.254/")

    result, _, server = await taxii(moved)
    assert isinstance(result, ToolError) and result.code == "redirected", result


async def test_credentials_in_the_api_root_never_reach_an_error():
    async with Server(lambda m, p, h, w: answer(w, 200, b"")) as server:
        port = server.port
    cfg = TaxiiConfig(backend="taxii", api_root=f"http://handrail:url-pass-77@127.0.0.1:{port}/api/",
                      http_feeds=False, timeout=1.0)
    intel = TaxiiIntel(cfg, None)  # the server is gone: connection refused
    try:
        with pytest.raises(Unavailable) as exc:
            await intel.fetch_feed("taxii:t")
    finally:
        await intel.aclose()
    assert "url-pass-77" not in str(exc.value) and f"http://127.0.0.1:{port}" in str(exc.value)


PROBE = """
import asyncio, sys
from handrail.ops.log import get_logger
from handrail.ops.tools_config import TaxiiIntel as C
from handrail.tools.intel_taxii import TaxiiIntel
from handrail.tools.errors import ToolError

async def main():
    async def serve(reader, writer):
        await reader.readuntil(b"\\r\\n\\r\\n")
        writer.write(b"HTTP/1.1 404 X\\r\\nContent-Length: 0\\r\\n\\r\\n")
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    get_logger()  # the worker's logging, as every activity sets it up
    intel = TaxiiIntel(C(backend="taxii", api_root=f"http://handrail:url-pass-77@127.0.0.1:{port}/api/",
                         http_feeds=False), None)
    try:
        await intel.fetch_feed("taxii:t")
    except ToolError as exc:
        print(exc)
    await intel.aclose()

asyncio.run(main())
"""


def test_library_log_lines_carry_no_credentials():
    """httpx logs each request's URL through the standard logging module, not structlog."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "HANDRAIL_LOG_LEVEL": "INFO"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=60,
                         cwd=root)
    assert "HTTP Request: GET http://handrail:" in out.stderr, out.stderr  # the line is there...
    assert "url-pass-77" not in out.stderr + out.stdout  # ...without the password
