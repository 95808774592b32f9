"""One ASGI middleware in front of every route: auth, faults, write serialization,
idempotency and the call log — in that order.

- Auth: `Authorization: Bearer <token>` on everything but `GET /_lab/health`; tool routes
  take the tool token only, the lab's own `/_lab/*` routes the admin token only (a tool token
  never administers the lab, and the admin token reaches no tool). Tokens are compared in
  constant time and never written anywhere.
- Faults (`lab.faults`): latency then an injected error, never on `/_lab/*`.
- Writes (POST/PUT/PATCH/DELETE) run one at a time under an asyncio lock, so SQLite sees a
  single writer and check-then-act handlers cannot interleave.
- Idempotency (`lab.idempotency`) for tool writes carrying `Idempotency-Key`. A write's body
  is read in full before its handler runs: a client that goes away mid-body never reaches
  the handler, so it can never leave a "could not parse the body" answer under its key.
  A response is stored only when the handler ran on the whole request, did not reject the
  body itself, and did not fail with a 5xx.
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

        after_fault: int | None = None
        if not internal:
            decision = self.faults.decide(method, path)
            if decision.latency_ms:
                await asyncio.sleep(decision.latency_ms / 1000)
            if decision.status is not None and decision.after_apply and method in WRITE_METHODS:
                after_fault = decision.status
            elif decision.status is not None:
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
            if after_fault is None:
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
            whole, body_chunks = await _read_whole_body(receive)
            if not whole:
                log(499)  # the client went away before its request arrived: nothing ran
                return
            try:
                await self.app(scope, _replay(body_chunks, receive), capture)
            finally:
                if key and not internal and not scope.get(BODY_REJECTED):
                    idempotency.remember(self.store, key, method, path, captured["status"],
                                         captured["ctype"], b"".join(captured["body"]))
                log(after_fault or captured["status"])
            if after_fault is not None:
                status, body = _json_body(
                    after_fault, "fault_injected",
                    f"The lab applied {method} {path} and then injected a {after_fault} fault.",
                )
                await _send_simple(send, status, body)


BODY_REJECTED = "lab.body_rejected"  # set in scope by the app when it could not parse a body


async def _read_whole_body(receive) -> tuple[bool, list[bytes]]:
    """Read the request body to its end; (False, _) if the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False, chunks
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return True, chunks


def _replay(chunks: list[bytes], receive):
    """A `receive` that hands the handler the body already read, then waits as the real one."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return await receive()

    return replay
