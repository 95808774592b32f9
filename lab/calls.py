"""The call log: every tool request (method, path, idempotency key, status, time).

It lets tests and the demo see what automation actually did to the estate. It never
records headers, bodies or tokens, and it is not part of the estate's state hash.
`/_lab/*` requests are not logged.
"""

from __future__ import annotations

from typing import Any

from lab.clock import now_iso
from lab.store import Store


def record(store: Store, method: str, path: str, idempotency_key: str | None, status: int) -> None:
    store.db.execute(
        "INSERT INTO calls(method, path, idempotency_key, status, at) VALUES (?, ?, ?, ?, ?)",
        (method, path, idempotency_key, status, now_iso()),
    )


def recent(store: Store, limit: int) -> list[dict[str, Any]]:
    rows = store.db.execute(
        "SELECT method, path, idempotency_key, status, at FROM calls ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        {"method": m, "path": p, "idempotency_key": k, "status": s, "at": a}
        for m, p, k, s, a in reversed(rows)
    ]
