"""Idempotency keys: a state-changing request whose `Idempotency-Key` was seen before gets
the first response back (status, content type, body) and changes nothing again.

Responses with a 5xx status are not stored, so a retry after a failure runs for real.
Reusing a key for a different method or path is refused (422), like payment APIs do.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from lab.clock import now_iso
from lab.store import Store


@dataclass
class Stored:
    method: str
    path: str
    status: int
    content_type: str
    body: bytes


def lookup(store: Store, key: str) -> Stored | None:
    row = store.db.execute(
        "SELECT method, path, status, content_type, body FROM idempotency WHERE key=?", (key,)
    ).fetchone()
    if row is None:
        return None
    return Stored(row[0], row[1], row[2], row[3], bytes(row[4]))


def remember(store: Store, key: str, method: str, path: str, status: int, content_type: str,
             body: bytes) -> None:
    if status >= 500:
        return
    store.db.execute(
        "INSERT OR REPLACE INTO idempotency(key, method, path, status, content_type, body, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (key, method, path, status, content_type, sqlite3.Binary(body), now_iso()),
    )
