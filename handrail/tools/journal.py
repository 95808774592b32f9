"""Idempotency for tools that have no idempotency keys of their own (a zone file, an nftables
set, an IMAP folder): the same `Idempotency-Key` contract the lab gives, kept locally.

A keyed call first records its intent (`pending`), then acts, then records the outcome.
A replay of a finished call returns the stored result or re-raises the stored refusal
without touching the tool. A replay of a call that is still `pending` (the worker died or
the tool failed retryably after the intent was written) acts again with `resume=True`,
and the backend then treats "already in the wanted state" as its own earlier success
instead of a conflict. Reusing a key for a different call is refused, as the lab does.
Retryable failures are never stored: the retry must really try again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from handrail.tools.errors import Conflict, Invalid, NotFound, ToolError, Unauthorized, Unavailable

_ERRORS: dict[str, type[ToolError]] = {c.__name__: c for c in (ToolError, Conflict, Invalid, NotFound,
                                                                 Unauthorized, Unavailable)}


def fingerprint(op: str, *args: Any) -> str:
    return hashlib.sha256(json.dumps([op, *args], sort_keys=True, default=str).encode()).hexdigest()


class Journal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("""CREATE TABLE IF NOT EXISTS calls (
            tool TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL,
            outcome TEXT, PRIMARY KEY (tool, key))""")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _get(self, tool: str, key: str) -> tuple[str, str, str | None] | None:
        with self._lock:
            return self._db.execute("SELECT fingerprint, state, outcome FROM calls WHERE tool=? AND key=?",
                                    (tool, key)).fetchone()

    def _put(self, tool: str, key: str, fp: str, state: str, outcome: str | None) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?)", (tool, key, fp, state, outcome))

    async def run(self, tool: str, key: str | None, fp: str,
                  act: Callable[[bool], Awaitable[Any]],
                  dump: Callable[[Any], Any] = lambda r: r,
                  load: Callable[[Any], Any] = lambda r: r) -> Any:
        """`act(resume)` once per key; `dump`/`load` turn its result into JSON and back."""
        if not key:
            return await act(False)
        row = await asyncio.to_thread(self._get, tool, key)
        resume = False
        if row is not None:
            stored_fp, state, outcome = row
            if stored_fp != fp:
                raise Invalid("This idempotency key was already used for a different request.",
                              status=422, code="idempotency_key_reused")
            if state == "done":
                data = json.loads(outcome or "null")
                if isinstance(data, dict) and "error" in data:
                    err = data["error"]
                    raise _ERRORS.get(err["type"], ToolError)(err["message"], status=err.get("status"),
                                                              code=err.get("code"))
                return load(data.get("result") if isinstance(data, dict) else None)
            resume = True
        else:
            await asyncio.to_thread(self._put, tool, key, fp, "pending", None)
        try:
            result = await act(resume)
        except ToolError as exc:
            if not exc.retryable:
                stored = {"error": {"type": type(exc).__name__, "message": exc.message,
                                    "status": exc.status, "code": exc.code}}
                await asyncio.to_thread(self._put, tool, key, fp, "done", json.dumps(stored))
            raise
        await asyncio.to_thread(self._put, tool, key, fp, "done", json.dumps({"result": dump(result)}))
        return result
