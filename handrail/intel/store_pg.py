"""The intel store in PostgreSQL: the same content-addressed blobs, shared by every worker.

With several workers on several hosts an intel sync's activities land anywhere: the feed
one worker downloaded and the sets another normalised must be found by the worker that
plans or applies the batch. So when the ledger is on PostgreSQL the blobs are too, in one
table keyed by (kind, sha256). A blob is immutable and named by its own hash, so a write
is ``INSERT … ON CONFLICT DO NOTHING``: two workers storing the same set at once both
succeed and the table holds it once. Only the parse cache (keyed by a hash of the feed,
parser version and mapping, not of its own bytes) is replaced.

psycopg 3 with a small pool per database URL and per process (:meth:`shared`); every call
blocks, so callers in async activities run them in a thread, as they do for files.
"""

from __future__ import annotations

from handrail.intel.pg import PerUrl, open_pool
from handrail.intel.store import KINDS, BlobMissing, IntelStore

POOL_MAX = 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS intel_blobs (
    kind   text  NOT NULL CHECK (kind IN ('feed', 'iset', 'json', 'f64', 'cache')),
    sha256 text  NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    data   bytea NOT NULL,
    PRIMARY KEY (kind, sha256)
);
"""
_SCHEMA_LOCK = 0x48524953  # advisory lock id: two workers starting at once create the table once

STORES: PerUrl[PostgresIntelStore] = PerUrl()


class PostgresIntelStore(IntelStore):
    """:class:`IntelStore` whose blobs live in the ``intel_blobs`` table of ``url``."""

    def __init__(self, url: str, *, max_size: int = POOL_MAX) -> None:
        self.url = url
        self.root = None  # no folder: nothing may bypass the blob primitives
        self.pool = open_pool(url, name="handrail-intel", max_size=max_size, schema=SCHEMA, lock=_SCHEMA_LOCK)

    @classmethod
    def shared(cls, url: str) -> PostgresIntelStore:
        """One store (one pool) per URL in this process, so every caller shares its connections."""
        return STORES.get(url, lambda: cls(url))

    def close(self) -> None:
        STORES.forget(self.url, self)
        self.pool.close()

    def _put_blob(self, kind: str, key: str, data: bytes) -> None:
        with self.pool.connection() as conn:
            conn.execute("INSERT INTO intel_blobs(kind, sha256, data) VALUES (%s, %s, %s)"
                         " ON CONFLICT DO NOTHING", (kind, key, data))

    def _replace_blob(self, kind: str, key: str, data: bytes) -> None:
        with self.pool.connection() as conn:
            conn.execute("INSERT INTO intel_blobs(kind, sha256, data) VALUES (%s, %s, %s)"
                         " ON CONFLICT (kind, sha256) DO UPDATE SET data = EXCLUDED.data",
                         (kind, key, data))

    def _get_blob(self, kind: str, key: str) -> bytes:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT data FROM intel_blobs WHERE kind=%s AND sha256=%s",
                               (kind, key)).fetchone()
        if row is None:
            raise BlobMissing(f"no {kind} {key} in the intel store")
        return bytes(row[0])

    def _has_blob(self, kind: str, key: str) -> bool:
        with self.pool.connection() as conn:
            return conn.execute("SELECT 1 FROM intel_blobs WHERE kind=%s AND sha256=%s",
                                (kind, key)).fetchone() is not None

    def blob_keys(self, kind: str) -> list[str]:
        if kind not in KINDS:
            raise ValueError(f"not a blob kind of the intel store: {kind!r}")
        with self.pool.connection() as conn:
            return [r[0] for r in conn.execute(
                "SELECT sha256 FROM intel_blobs WHERE kind=%s ORDER BY sha256", (kind,))]
