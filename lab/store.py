"""The lab's persistent state: one SQLite file (WAL), mirrored in memory for fast reads.

Tool state is a set of JSON documents addressed by (tool, collection, key). Every tool's
state document is `{collection: {key: doc}}`, which is what `/_lab/state` hashes. Big
payloads (raw e-mails, intel feed bodies) live in a content-addressed `blobs` table and
documents refer to them by sha256, so hashing the estate never touches them.

Besides documents the file holds: counters (ids like ALR-000001), the idempotency table,
the call log and fault rules — none of which is part of the estate or its hash.

All access happens on the event loop thread (handlers are `async def`); writes are
serialized by the middleware's write lock, so one connection is enough.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    tool TEXT NOT NULL, coll TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tool, coll, key)
);
CREATE TABLE IF NOT EXISTS blobs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL,
    content_type TEXT NOT NULL, body BLOB NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, method TEXT NOT NULL, path TEXT NOT NULL,
    idempotency_key TEXT, status INTEGER NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faults (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
"""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Store:
    def __init__(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        self._depth = 0
        self.version = 0  # bumped on every document write; lets callers cache derived views
        self._docs: dict[str, dict[str, dict[str, Any]]] = {}
        self._raw: dict[str, dict[str, dict[str, str]]] = {}  # canonical JSON of each doc
        self._load()

    # -- lifecycle -------------------------------------------------------------------
    def _load(self) -> None:
        self._docs, self._raw = {}, {}
        for tool, coll, key, body in self.db.execute("SELECT tool, coll, key, body FROM docs"):
            self._docs.setdefault(tool, {}).setdefault(coll, {})[key] = json.loads(body)
            self._raw.setdefault(tool, {}).setdefault(coll, {})[key] = body
        self.version += 1

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:
            pass

    def is_empty(self) -> bool:
        return self.db.execute("SELECT 1 FROM meta WHERE name='seeded'").fetchone() is None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes into one transaction (nested batches join the outer one)."""
        if self._depth == 0:
            self.db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self.db.execute("ROLLBACK")
                self._load()
            raise
        self._depth -= 1
        if self._depth == 0:
            self.db.execute("COMMIT")

    def wipe(self) -> None:
        with self.batch():
            for table in ("docs", "blobs", "counters", "meta", "idempotency", "calls", "faults"):
                self.db.execute(f"DELETE FROM {table}")
            self._docs, self._raw = {}, {}
            self.version += 1

    def mark_seeded(self) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(name, value) VALUES ('seeded', '1')")

    # -- documents -------------------------------------------------------------------
    def get(self, tool: str, coll: str, key: str) -> dict[str, Any] | None:
        raw = self._raw.get(tool, {}).get(coll, {}).get(key)
        return json.loads(raw) if raw is not None else None

    def all(self, tool: str, coll: str) -> list[dict[str, Any]]:
        """All documents of a collection, as copies, ordered by key."""
        raws = self._raw.get(tool, {}).get(coll, {})
        return [json.loads(raws[k]) for k in sorted(raws)]

    def keys(self, tool: str, coll: str) -> list[str]:
        return sorted(self._docs.get(tool, {}).get(coll, {}))

    def count(self, tool: str, coll: str) -> int:
        return len(self._docs.get(tool, {}).get(coll, {}))

    def put(self, tool: str, coll: str, key: str, doc: dict[str, Any]) -> None:
        raw = canonical_json(doc)
        self.db.execute(
            "INSERT OR REPLACE INTO docs(tool, coll, key, body) VALUES (?, ?, ?, ?)",
            (tool, coll, key, raw),
        )
        self._docs.setdefault(tool, {}).setdefault(coll, {})[key] = json.loads(raw)
        self._raw.setdefault(tool, {}).setdefault(coll, {})[key] = raw
        self.version += 1

    def put_many(self, rows: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        encoded = [(t, c, k, canonical_json(d)) for t, c, k, d in rows]
        with self.batch():
            self.db.executemany(
                "INSERT OR REPLACE INTO docs(tool, coll, key, body) VALUES (?, ?, ?, ?)", encoded
            )
            for t, c, k, raw in encoded:
                self._docs.setdefault(t, {}).setdefault(c, {})[k] = json.loads(raw)
                self._raw.setdefault(t, {}).setdefault(c, {})[k] = raw
            self.version += 1

    def delete(self, tool: str, coll: str, key: str) -> bool:
        docs = self._docs.get(tool, {}).get(coll, {})
        if key not in docs:
            return False
        self.db.execute(
            "DELETE FROM docs WHERE tool=? AND coll=? AND key=?", (tool, coll, key)
        )
        del docs[key]
        del self._raw[tool][coll][key]
        self.version += 1
        return True

    def snapshot(self, tool: str, colls: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """The tool's state document (shared references: callers must not mutate it)."""
        out: dict[str, dict[str, Any]] = {}
        for coll in colls:
            docs = self._docs.get(tool, {}).get(coll, {})
            out[coll] = {k: docs[k] for k in sorted(docs)}
        return out

    # -- blobs -----------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.db.execute(
            "INSERT OR IGNORE INTO blobs(sha256, data) VALUES (?, ?)", (digest, sqlite3.Binary(data))
        )
        return digest

    def get_blob(self, digest: str) -> bytes | None:
        row = self.db.execute("SELECT data FROM blobs WHERE sha256=?", (digest,)).fetchone()
        return bytes(row[0]) if row else None

    def drop_blob(self, digest: str) -> None:
        self.db.execute("DELETE FROM blobs WHERE sha256=?", (digest,))

    # -- counters --------------------------------------------------------------------
    def next_id(self, name: str) -> int:
        with self.batch():
            row = self.db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
            value = (row[0] if row else 0) + 1
            self.db.execute(
                "INSERT OR REPLACE INTO counters(name, value) VALUES (?, ?)", (name, value)
            )
        return value

    def set_counter(self, name: str, value: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO counters(name, value) VALUES (?, ?)", (name, value))
