"""PostgreSQL plumbing the intel store and the sync's state share: their pools.

Both keep one pool per database URL in each process (`PerUrl`), so every caller in a worker
shares its connections, and both create their tables once under an advisory lock when the
first worker starts (`open_pool`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 10

T = TypeVar("T")


def where(url: str) -> str:
    """host:port/db of a URL, never its password (for error messages)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def open_pool(url: str, *, name: str, max_size: int, schema: str, lock: int):
    """A psycopg pool on `url` once `schema` exists (created under advisory lock `lock`, so
    workers starting together create it once). An unreachable database is one sentence, at
    once: `LedgerUnavailable`, which the worker and the CLI report as such."""
    import psycopg
    from psycopg_pool import ConnectionPool, PoolTimeout

    from handrail.gate.ledger_core import LedgerUnavailable

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            conn.execute(schema)
    except psycopg.OperationalError as exc:
        raise LedgerUnavailable(f"the intel store in the PostgreSQL ledger at {where(url)} cannot be reached "
                                f"({type(exc).__name__})") from None
    pool = ConnectionPool(url, min_size=1, max_size=max_size, open=False, name=name,
                          kwargs={"autocommit": True}, timeout=60)
    try:
        pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
    except PoolTimeout:
        pool.close()
        raise LedgerUnavailable(f"the intel store in the PostgreSQL ledger at {where(url)} cannot be reached "
                                "(PoolTimeout)") from None
    return pool


class PerUrl(Generic[T]):
    """One object (with one pool, `.pool`) per database URL in this process."""

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, url: str, make: Callable[[], T]) -> T:
        """The URL's shared object, made anew if there is none or its pool was closed."""
        with self._lock:
            item = self._items.get(url)
            if item is None or item.pool.closed:
                item = self._items[url] = make()
            return item

    def forget(self, url: str, item: T) -> None:
        """Called by an object's `close`: the next `get` makes a new one."""
        with self._lock:
            if self._items.get(url) is item:
                del self._items[url]

    def close(self, url: str) -> None:
        item = self._items.get(url)
        if item is not None:
            item.close()
