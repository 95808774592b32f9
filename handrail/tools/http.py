"""The small HTTP base every lab client shares: one `httpx.AsyncClient`, responses mapped
to `handrail.tools.errors`, `Idempotency-Key` passed through when given.

No retries here: Temporal retries activities, and it can only do that well if each call
fails fast with an honest `retryable` flag.

A tool's server is not trusted to behave: redirects are never followed (a 3xx, a captive
portal's or a stray 304, is an error, never an empty answer), error messages are cut to one
short sentence with the credentials scrubbed, and a caller that reads a body an attacker may
size (a feed) gives `max_bytes` and `deadline`: the body is read as it streams, decoded
(gzip/deflate only) in bounded steps, and refused as soon as it passes the cap, and the whole
exchange has a deadline however slowly the server drips.
"""

from __future__ import annotations

import asyncio
import base64
import zlib
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict

from handrail.tools.errors import Conflict, Invalid, NotFound, ToolError, Unauthorized, Unavailable
from handrail.tools.keepalive import MAX_BODY, BodyTooLarge

DEFAULT_TIMEOUT = 10.0
MAX_MESSAGE = 300  # characters of a tool's own error text kept in an error (it reaches history and the audit)
INFLATE_STEP = 64 * 1024  # compressed bytes decoded at a time (at most ~64 MiB out of gzip's best ratio)
DECODED = ("gzip", "x-gzip", "deflate")  # no br/zstd: a bounded reader here would need their libraries


class ToolModel(BaseModel):
    """Base for every model a client returns: tolerant of fields added by newer tools."""

    model_config = ConfigDict(extra="ignore")


def seg(value: str | int) -> str:
    """Quote one path segment fully ('/' too), so CIDRs and URLs survive as one segment."""
    return quote(str(value), safe="")


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE].rstrip() + "…"
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def _origin(location: str) -> str:
    """scheme://host[:port] of a redirect's target (never its user info, path or query)."""
    try:
        url = httpx.URL(location)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "an unreadable location"
    if not url.host:
        return "the same server"
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"[:120]


class _Inflater:
    """gzip or deflate (zlib-wrapped or raw) decoding that refuses to produce more than a cap."""

    def __init__(self, encoding: str) -> None:
        self.gzip = encoding in ("gzip", "x-gzip")
        self._d = zlib.decompressobj(zlib.MAX_WBITS | 16 if self.gzip else zlib.MAX_WBITS)
        self._first = True

    def feed(self, data: bytes, room: int) -> bytes | None:
        """Decoded bytes, or None when they would pass `room`."""
        try:
            out = self._d.decompress(data, room + 1)
        except zlib.error:
            if self.gzip or not self._first:
                raise
            self._d = zlib.decompressobj(-zlib.MAX_WBITS)  # "deflate" sent raw, as some servers do
            out = self._d.decompress(data, room + 1)
        self._first = False
        return None if len(out) > room or self._d.unconsumed_tail else out

    def flush(self, room: int) -> bytes | None:
        out = self._d.flush()
        return None if len(out) > room else out


class LabHTTP:
    def __init__(self, client: httpx.AsyncClient, *, secret: str = "") -> None:
        self.client = client
        self._secrets = _secrets(client, secret)

    @property
    def base_url(self) -> str:
        """The tool's address as errors name it: never with the user info a URL may carry."""
        return str(self.client.base_url.copy_with(userinfo=b"")).rstrip("/")

    def _scrub(self, message: str) -> str:
        for secret in self._secrets:
            if secret in message:
                message = message.replace(secret, "***")
        return message

    def redirect_error(self, resp: httpx.Response, method: str, path: str) -> ToolError:
        """A 3xx: never followed (credentials must not go to another origin, and a captive
        portal's redirect is not the answer), never read as an empty success."""
        status = resp.status_code
        location = resp.headers.get("location")
        to = f" to {_origin(location)}" if location else ""
        return ToolError(self._scrub(f"{method} {path} answered HTTP {status}{to} instead of an answer; "
                                     "Handrail does not follow redirects from a tool."),
                         status=status, code="redirected", retryable=False)

    def error_for(self, resp: httpx.Response, method: str, path: str) -> ToolError:
        status = resp.status_code
        code = None
        message = f"{method} {path} failed with HTTP {status}."
        try:
            body = resp.json()
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                message = _sentence(self._scrub(body["error"]))
                code = body.get("code") if isinstance(body.get("code"), str) else None
        except (ValueError, RecursionError):  # RecursionError: a body nested too deep to decode
            pass
        message = self._scrub(message)
        if status in (401, 403):
            return Unauthorized(message, status=status, code=code)
        if status == 404:
            return NotFound(message, status=status, code=code)
        if status == 409:
            return Conflict(message, status=status, code=code)
        if status in (400, 422):
            return Invalid(message, status=status, code=code)
        if status >= 500:
            return Unavailable(message, status=status, code=code)
        return ToolError(message, status=status, code=code or "error", retryable=False)

    async def request(self, method: str, path: str, *, json: Any = None,
                      params: dict[str, Any] | None = None, content: bytes | None = None,
                      headers: dict[str, str] | None = None,
                      idempotency_key: str | None = None, max_bytes: int | None = None,
                      deadline: float | None = None) -> httpx.Response:
        """One exchange. `max_bytes`: refuse a (decoded) body larger than this, read as it
        streams; `deadline`: seconds for the whole exchange, body included."""
        hdrs = dict(headers or {})
        if idempotency_key:
            hdrs["Idempotency-Key"] = idempotency_key
        if params:
            params = {k: v for k, v in params.items() if v is not None}
            params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()}
        try:
            async with asyncio.timeout(deadline):
                if max_bytes is None:
                    resp = await self.client.request(method, path, json=json, params=params or None,
                                                     content=content, headers=hdrs or None)
                else:
                    resp = await self._bounded(method, path, max_bytes, json=json, params=params or None,
                                               content=content, headers=hdrs)
        except TimeoutError as exc:  # only the deadline's: the transports raise httpx's own timeouts
            raise Unavailable(f"{method} {path} did not finish within {deadline:g} s at {self.base_url}.",
                              code="timeout") from exc
        except BodyTooLarge as exc:
            raise self._too_large(method, path, max_bytes) from exc
        except httpx.TimeoutException as exc:
            raise Unavailable(f"{method} {path} timed out waiting for {self.base_url}.",
                              code="timeout") from exc
        except httpx.TransportError as exc:
            raise Unavailable(f"The tool at {self.base_url} is not answering.",
                              code="unreachable") from exc
        except httpx.DecodingError as exc:  # a body that is not what its Content-Encoding says
            raise ToolError(f"{method} {path} answered with a body that does not decode.",
                            code="bad_response", retryable=False) from exc
        except httpx.InvalidURL as exc:  # e.g. a path or query past httpx's length limit
            raise Invalid(f"{method} {path} cannot be sent: {exc}.", code="invalid_input") from exc
        if resp.status_code >= 400:
            raise self.error_for(resp, method, path)
        if resp.status_code >= 300:
            raise self.redirect_error(resp, method, path)
        return resp

    @staticmethod
    def _too_large(method: str, path: str, max_bytes: int | None) -> ToolError:
        return ToolError(f"{method} {path} answered with more than {max_bytes} bytes; the answer was refused.",
                         code="too_large", retryable=False)

    async def _bounded(self, method: str, path: str, max_bytes: int, *, headers: dict[str, str],
                       **kwargs: Any) -> httpx.Response:
        headers = {**headers, "Accept-Encoding": "gzip, deflate"}
        req = self.client.build_request(method, path, headers=headers, extensions={MAX_BODY: max_bytes},
                                        **kwargs)
        resp = await self.client.send(req, stream=True)
        try:
            body = await self._read_bounded(resp, method, path, max_bytes)
        finally:
            await resp.aclose()
        kept = [(k, v) for k, v in resp.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(resp.status_code, headers=kept, content=body, request=req)

    async def _read_bounded(self, resp: httpx.Response, method: str, path: str, max_bytes: int) -> bytes:
        encoding = resp.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity") + DECODED:
            raise ToolError(f"{method} {path} answered in the content encoding {encoding[:40]!r}, which "
                            "Handrail does not read (gzip and deflate only).", code="bad_response",
                            retryable=False)
        length = resp.headers.get("content-length", "")
        if length.strip().isdigit() and int(length) > max_bytes:
            raise self._too_large(method, path, max_bytes)
        if resp.is_stream_consumed:  # built from bytes by an in-memory transport (tests): read already
            if len(resp.content) > max_bytes:
                raise self._too_large(method, path, max_bytes)
            return resp.content
        inflater = _Inflater(encoding) if encoding in DECODED else None
        body = bytearray()
        raw = 0
        try:
            async for chunk in resp.aiter_raw():
                raw += len(chunk)
                if raw > max_bytes:
                    raise self._too_large(method, path, max_bytes)
                if inflater is None:
                    if len(body) + len(chunk) > max_bytes:
                        raise self._too_large(method, path, max_bytes)
                    body += chunk
                    continue
                view = memoryview(chunk)
                for at in range(0, len(view), INFLATE_STEP):  # a transport may hand over the whole body
                    out = inflater.feed(view[at:at + INFLATE_STEP], max_bytes - len(body))
                    if out is None:
                        raise self._too_large(method, path, max_bytes)
                    body += out
                    if len(view) > INFLATE_STEP:
                        await asyncio.sleep(0)  # let the worker's other tasks run between steps
            if inflater is not None:
                out = inflater.flush(max_bytes - len(body))
                if out is None:
                    raise self._too_large(method, path, max_bytes)
                body += out
        except zlib.error:
            raise ToolError(f"{method} {path} answered with a body that is not valid {encoding}.",
                            code="bad_response", retryable=False) from None
        return bytes(body)

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = await self.request(method, path, **kwargs)
        try:
            return resp.json()
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to decode
            raise ToolError(f"{method} {path} answered with something that is not JSON.",
                            status=resp.status_code, code="bad_response") from exc

    async def get_or_none(self, path: str, **kwargs: Any) -> Any | None:
        try:
            return await self.json("GET", path, **kwargs)
        except NotFound:
            return None


def _secrets(client: httpx.AsyncClient, secret: str) -> list[str]:
    """Every spelling of the client's credentials a server could echo back into an error:
    the secret itself, the Authorization header's value and its credential part (a basic
    auth's base64 of user:password)."""
    found = {secret} if secret else set()
    url = client.base_url
    if url.userinfo:  # https://user:password@host/ (httpx sends it as basic auth)
        found.update({url.userinfo.decode("ascii", "replace"), url.password or ""})
    values = [client.headers.get("authorization", "")]
    auth = getattr(client, "auth", None)
    if isinstance(auth, httpx.BasicAuth):
        values.append(auth._auth_header)  # noqa: SLF001 (httpx keeps the header it sends there)
    for value in filter(None, values):
        scheme, _, credential = value.partition(" ")
        if credential.strip():
            found.update({value, credential})
            if scheme.lower() == "basic":
                try:
                    found.add(base64.b64decode(credential).decode("utf-8", "replace"))
                except ValueError:
                    pass
    return sorted(filter(None, found), key=len, reverse=True)
