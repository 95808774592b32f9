"""The small HTTP base every lab client shares: one `httpx.AsyncClient`, responses mapped
to `handrail.tools.errors`, `Idempotency-Key` passed through when given.

No retries here: Temporal retries activities, and it can only do that well if each call
fails fast with an honest `retryable` flag.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict

from handrail.tools.errors import Conflict, Invalid, NotFound, ToolError, Unauthorized, Unavailable

DEFAULT_TIMEOUT = 10.0


class ToolModel(BaseModel):
    """Base for every model a client returns: tolerant of fields added by newer tools."""

    model_config = ConfigDict(extra="ignore")


def seg(value: str | int) -> str:
    """Quote one path segment fully ('/' too), so CIDRs and URLs survive as one segment."""
    return quote(str(value), safe="")


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?")) else text + "."


class LabHTTP:
    def __init__(self, client: httpx.AsyncClient, *, secret: str = "") -> None:
        self.client = client
        self._secret = secret

    @property
    def base_url(self) -> str:
        return str(self.client.base_url).rstrip("/")

    def _scrub(self, message: str) -> str:
        if self._secret and self._secret in message:
            message = message.replace(self._secret, "***")
        return message

    def error_for(self, resp: httpx.Response, method: str, path: str) -> ToolError:
        status = resp.status_code
        code = None
        message = f"{method} {path} failed with HTTP {status}."
        try:
            body = resp.json()
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                message = _sentence(body["error"])
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
                      idempotency_key: str | None = None) -> httpx.Response:
        hdrs = dict(headers or {})
        if idempotency_key:
            hdrs["Idempotency-Key"] = idempotency_key
        if params:
            params = {k: v for k, v in params.items() if v is not None}
            params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()}
        try:
            resp = await self.client.request(method, path, json=json, params=params or None,
                                             content=content, headers=hdrs or None)
        except httpx.TimeoutException as exc:
            raise Unavailable(f"{method} {path} timed out waiting for {self.base_url}.",
                              code="timeout") from exc
        except httpx.TransportError as exc:
            raise Unavailable(f"The tool at {self.base_url} is not answering.",
                              code="unreachable") from exc
        if resp.status_code >= 400:
            raise self.error_for(resp, method, path)
        return resp

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
