"""One ASGI middleware in front of every route: auth, faults, write serialization,
idempotency and the call log — in that order.

- Auth: `Authorization: Bearer <token>` on everything but `GET /_lab/health`; tool routes
  take the tool token only, the lab's own `/_lab/*` routes the admin token only (a tool token
  never administers the lab, and the admin token reaches no tool). Tokens are compared in
  constant time and never written anywhere.
- Faults (`lab.faults`): latency then an injected error, never on `/_lab/*`.
- Writes (POST/PUT/PATCH/DELETE) run one at a time under an asyncio lock, so SQLite sees a
  single writer and check-then-act handlers cannot interleave.
- Idempotency (`lab.idempotency`) for tool writes carrying `Idempotency-Key`.
- Call log (`lab.calls`) for every tool request, including refused and replayed ones.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from lab import calls, idempotency
from lab.faults import FaultBook
from lab.store import Store

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _json_body(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"error": message, "code": code}).encode()


async def _send_simple(send, status: int, body: bytes, content_type: str = "application/json",
                       extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type.encode()),
               (b"content-length", str(len(body)).encode())] + (extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class LabMiddleware:
    def __init__(self, app: Any, *, store: Store, faults: FaultBook, token: str, admin_token: str = "") -> None:
        self.app = app
        self.store = store
        self.faults = faults
        self.token = token.encode()
        self.admin_token = admin_token.encode()
        self.write_lock = asyncio.Lock()

    def _authorized(self, headers: dict[bytes, bytes], internal: bool = False) -> bool:
        value = headers.get(b"authorization", b"")
        scheme, _, supplied = value.partition(b" ")
        wanted = self.admin_token if internal else self.token
        return bool(wanted) and scheme.lower() == b"bearer" and hmac.compare_digest(supplied.strip(), wanted)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        internal = path == "/_lab" or path.startswith("/_lab/")
        headers = dict(scope.get("headers") or [])
        raw_key = headers.get(b"idempotency-key")
        key = raw_key.decode("latin-1").strip() if raw_key else None
        key = key or None

        def log(status: int) -> None:
            if not internal:
                calls.record(self.store, method, path, key, status)

        if not (internal and path == "/_lab/health") and not self._authorized(headers, internal):
            status, body = _json_body(
                401, "unauthorized",
                "The lab's admin routes need the admin token (HANDRAIL_LAB_ADMIN_TOKEN); tool tokens are refused here."
                if internal else "A valid bearer token is required for the lab.",
            )
            log(status)
            await _send_simple(send, status, body, extra=[(b"www-authenticate", b"Bearer")])
            return

        if not internal:
            decision = self.faults.decide(method, path)
            if decision.latency_ms:
                await asyncio.sleep(decision.latency_ms / 1000)
            if decision.status is not None:
                status, body = _json_body(
                    decision.status, "fault_injected",
                    f"The lab injected a {decision.status} fault for {method} {path}.",
                )
                log(status)
                await _send_simple(send, status, body)
                return

        captured: dict[str, Any] = {"status": 500, "ctype": "application/json", "body": []}

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        captured["ctype"] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        if method not in WRITE_METHODS:
            try:
                await self.app(scope, receive, capture)
            finally:
                log(captured["status"])
            return

        async with self.write_lock:
            if key and not internal:
                stored = idempotency.lookup(self.store, key)
                if stored is not None:
                    if stored.method != method or stored.path != path:
                        status, body = _json_body(
                            422, "idempotency_key_reused",
                            "This Idempotency-Key was already used for a different request.",
                        )
                        log(status)
                        await _send_simple(send, status, body)
                        return
                    log(stored.status)
                    await _send_simple(send, stored.status, stored.body, stored.content_type,
                                       extra=[(b"idempotent-replayed", b"true")])
                    return
            try:
                await self.app(scope, receive, capture)
            finally:
                if key and not internal:
                    idempotency.remember(self.store, key, method, path, captured["status"],
                                         captured["ctype"], b"".join(captured["body"]))
                log(captured["status"])
