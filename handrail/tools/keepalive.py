"""A lean HTTP/1.1 keep-alive transport for the tool clients (`httpx.AsyncBaseTransport`).

Why not httpx's own pool: before every request and after every response, httpcore walks all
of its connections and asks each idle one whether the server closed it (a `getpeername` and
a `poll` system call per connection). A worker runs up to a hundred activities at once, so
with a hundred kept-alive connections one tool call cost 2.6 ms of the worker's CPU against
0.07 ms for the same exchange on plain asyncio streams (`handrail bench runbooks` showed the
gate spending more on its three HTTP calls than on everything else it does).

Here idle connections wait in a last-in-first-out stack per origin and are checked in O(1)
when taken: asyncio keeps reading an idle socket, so a server that closed it has already
fed the reader its EOF. Everything above the wire (URLs, headers, JSON, content decoding,
timeouts' meaning, proxies from the environment) stays httpx's, and so do the errors:
`httpx.ConnectError`, `ConnectTimeout`, `ReadTimeout`, `WriteTimeout`, `ReadError`,
`RemoteProtocolError`, which `handrail.tools.http` turns into honest retryable tool errors.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from typing import TypeVar

import httpx

MAX_HEAD_BYTES = 256 * 1024  # a status line and headers larger than this are refused
MAX_BODY = "handrail.max_body"  # a request extension: refuse a body (as sent on the wire) larger than this
MAX_IDLE_PER_ORIGIN = 128
_NO_BODY_STATUSES = frozenset({204, 304})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
T = TypeVar("T")


class BodyTooLarge(httpx.TransportError):
    """The answer's body is larger than the request's `MAX_BODY` extension allows."""


class _StaleConnection(Exception):
    """A reused connection closed before the server sent a byte of its answer."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing() or self.reader._buffer)  # noqa: SLF001

    def close(self) -> None:
        self.writer.close()


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with kept-alive connections; `ssl_context` for https (httpx's defaults if None)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None,
                 max_idle_per_origin: int = MAX_IDLE_PER_ORIGIN) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle_per_origin
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:  # a call racing the worker's shutdown: retryable, like any unreachable tool
            raise httpx.ConnectError("the tool clients are closed", request=request)
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"the tool transport speaks http and https, not {url.scheme!r}")
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        head = _request_head(request, len(body))
        connection = self._take_idle(origin)
        if connection is not None:
            try:
                return await self._exchange(origin, connection, head, body, request, timeouts, reused=True)
            except _StaleConnection:
                if request.method not in _IDEMPOTENT and "idempotency-key" not in request.headers:
                    raise httpx.RemoteProtocolError(
                        "the server closed a kept-alive connection without answering", request=request) from None
        connection = await self._connect(origin, request, timeouts.get("connect"))
        try:
            return await self._exchange(origin, connection, head, body, request, timeouts, reused=False)
        except _StaleConnection:
            raise httpx.RemoteProtocolError("the server disconnected without sending a response",
                                            request=request) from None

    async def aclose(self) -> None:
        self._closed = True
        for stack in self._idle.values():
            for connection in stack:
                connection.close()
        self._idle.clear()

    # -- connections -------------------------------------------------------------------------
    def _take_idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        stack = self._idle.get(origin)
        while stack:
            connection = stack.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    def _give_back(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        stack = self._idle.setdefault(origin, [])
        if self._closed or len(stack) >= self._max_idle or not connection.usable():
            connection.close()
        else:
            stack.append(connection)

    async def _connect(self, origin: tuple[str, str, int], request: httpx.Request,
                       timeout: float | None) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            if self._ssl_context is None:  # once: it reads the CA bundle from disk
                self._ssl_context = httpx.create_ssl_context()
            tls = self._ssl_context
        try:
            reader, writer = await _within(
                asyncio.open_connection(host, port, ssl=tls, server_hostname=host if tls else None,
                                        limit=MAX_HEAD_BYTES),
                timeout)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}", request=request) from None
        return _Connection(reader, writer)

    # -- one exchange ------------------------------------------------------------------------
    async def _exchange(self, origin, connection: _Connection, head: bytes, body: bytes,
                        request: httpx.Request, timeouts: dict, *, reused: bool) -> httpx.Response:
        done = False
        try:
            try:
                connection.writer.write(head + body if len(body) < 65536 else head)
                if len(body) >= 65536:
                    connection.writer.write(body)
                await _within(connection.writer.drain(), timeouts.get("write"))
            except TimeoutError:
                raise httpx.WriteTimeout("sending the request timed out", request=request) from None
            except OSError as exc:
                if reused:
                    raise _StaleConnection() from None
                raise httpx.WriteError(f"sending the request failed: {exc}", request=request) from None
            try:
                status, reason, headers, version = await _within(
                    _read_head(connection.reader, request, reused), timeouts.get("read"))
                content, keep = await _within(
                    _read_body(connection.reader, request, status, headers, version), timeouts.get("read"))
            except TimeoutError:
                raise httpx.ReadTimeout("the server did not answer in time", request=request) from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                raise httpx.ReadError(f"reading the answer failed: {type(exc).__name__}", request=request) from None
            done = keep
            return httpx.Response(status, headers=headers, stream=httpx.ByteStream(content), request=request,
                                  extensions={"http_version": version, "reason_phrase": reason})
        finally:
            if done:
                self._give_back(origin, connection)
            else:  # an error or a cancel mid-exchange leaves the connection in an unknown state
                connection.close()


async def _within(awaitable: Awaitable[T], timeout: float | None) -> T:
    if timeout is None:
        return await awaitable
    async with asyncio.timeout(timeout):
        return await awaitable


def _request_head(request: httpx.Request, length: int) -> bytes:
    url = request.url
    target = url.raw_path.decode("ascii") or "/"
    lines = [f"{request.method} {target} HTTP/1.1"]
    has_length = False
    for name, value in request.headers.multi_items():
        lowered = name.lower()
        if lowered == "transfer-encoding":
            continue  # the body was read whole: it goes with a Content-Length
        if lowered == "content-length":
            has_length = True
            value = str(length)
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise httpx.LocalProtocolError("a header holds a line break", request=request)
        lines.append(f"{name}: {value}")
    if not has_length and (length or request.method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_head(reader: asyncio.StreamReader, request: httpx.Request, reused: bool):
    """Status line and headers, skipping interim 1xx answers."""
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial and reused:
                raise _StaleConnection() from None
            if not exc.partial:
                raise httpx.RemoteProtocolError("the server disconnected without sending a response",
                                                request=request) from None
            raise
        except ConnectionResetError:
            if reused:
                raise _StaleConnection() from None
            raise
        lines = raw[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise httpx.RemoteProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}", request=request)
        status = int(parts[1])
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise httpx.RemoteProtocolError("a malformed header line in the answer", request=request)
            headers.append((name.strip(), value.strip()))
        if 100 <= status < 200 and status != 101:
            continue
        return status, (parts[2] if len(parts) > 2 else "").encode("latin-1"), headers, parts[0].encode("ascii")


async def _read_body(reader: asyncio.StreamReader, request: httpx.Request, status: int,
                     headers: list[tuple[str, str]], version: bytes) -> tuple[bytes, bool]:
    """The body, and whether the connection may be kept for the next request."""
    values: dict[str, str] = {}
    for name, value in headers:
        values[name.lower()] = value.lower() if name.lower() in ("connection", "transfer-encoding") else value
    connection = values.get("connection", "")
    keep = "close" not in connection and (version == b"HTTP/1.1" or "keep-alive" in connection)
    if request.method == "HEAD" or status in _NO_BODY_STATUSES:
        return b"", keep
    limit = request.extensions.get(MAX_BODY)
    if "chunked" in values.get("transfer-encoding", ""):
        return await _read_chunked(reader, request, limit), keep
    if "content-length" in values:
        length = int(values["content-length"])
        if length < 0:
            raise ValueError("negative Content-Length")
        _check(request, limit, length)
        return await reader.readexactly(length), keep
    if limit is None:
        return await reader.read(-1), False  # delimited by the server closing the connection
    body = bytearray()
    while chunk := await reader.read(65536):
        body += chunk
        _check(request, limit, len(body))
    return bytes(body), False


def _check(request: httpx.Request, limit: int | None, size: int) -> None:
    if limit is not None and size > limit:
        raise BodyTooLarge(f"the answer is larger than {limit} bytes", request=request)


async def _read_chunked(reader: asyncio.StreamReader, request: httpx.Request, limit: int | None) -> bytes:
    parts: list[bytes] = []
    wire = 0  # chunk framing counts too: a million one-byte chunks cost six million bytes
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        wire += len(size_line) + size + 2
        _check(request, limit, wire)
        if size == 0:
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                wire += len(line)  # trailers
                _check(request, limit, wire)
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("a chunk without its line break")
