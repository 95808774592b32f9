"""Content-addressed storage of feeds and normalized indicator sets.

Two backends behind one interface, chosen by :func:`handrail.intel.backends.open_store`: files under
``<home>/store`` (one host), or a PostgreSQL table when the ledger is on PostgreSQL (several
workers on several hosts: a set one worker stored is found by every other).

File layout under ``store_dir`` (``handrail.ops.config.load_settings().store_dir``):

* ``<sha256>.feed`` — raw feed bytes, named by their own SHA-256.
* ``<sha256>.iset`` — a normalized :class:`IndicatorSet` in a small deterministic
  binary format (below), named by the SHA-256 of the file, so equal sets have equal
  hashes across runs and machines.
* ``<sha256>.json`` / ``<sha256>.f64`` — the sync's reports and age-out clocks (:meth:`put_blob`).
* ``intel-cache/<key>.json`` — the :class:`FeedParse` for (content sha256, parser version,
  format, column mapping). An unchanged feed is answered from here without parsing.

``.iset`` format: ``b"HRISET1\\n"``, a little-endian uint32 length and a JSON header
(counts, sorted keys), then the IPv4 starts and ends as little-endian uint32 arrays, the
IPv6 starts and ends as 16-byte big-endian integers, then the domains and the URLs, each
a UTF-8 block of newline-separated strings. (``np.savez`` is not used: zip members carry
timestamps, so the same set would get a different hash on every write.)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from handrail.intel.models import FeedFormat, FeedParse
from handrail.intel.normalize import PARSER_VERSION, content_sha256, parse_feed
from handrail.intel.sets import IndicatorSet, unique_v6

_MAGIC = b"HRISET1\n"
_HEX = frozenset("0123456789abcdef")


def _check_sha(sha: str) -> str:
    """The hash itself, or a ValueError: a hash is a file name and a key, never a path."""
    if not isinstance(sha, str) or len(sha) != 64 or not _HEX.issuperset(sha):
        raise ValueError(f"not a sha256 hex digest: {str(sha)[:80]!r}")
    return sha


def encode_set(s: IndicatorSet) -> bytes:
    """The canonical bytes of a set (the input to its content hash)."""
    header = json.dumps({"ipv4": s.ipv4, "ipv6": s.ipv6, "domains": len(s.domains),
                         "urls": len(s.urls)}, sort_keys=True).encode()
    v6 = b"".join(int(a).to_bytes(16, "big") + int(b).to_bytes(16, "big")
                  for a, b in zip(s.v6_start, s.v6_end, strict=False))
    doms = "\n".join(s.domains).encode("utf-8")
    urls = "\n".join(s.urls).encode("utf-8")
    return b"".join([
        _MAGIC, len(header).to_bytes(4, "little"), header,
        s.v4_start.astype("<u4").tobytes(), s.v4_end.astype("<u4").tobytes(),
        v6,
        len(doms).to_bytes(8, "little"), doms,
        len(urls).to_bytes(8, "little"), urls,
    ])


def decode_set(data: bytes) -> IndicatorSet:
    if not data.startswith(_MAGIC):
        raise ValueError("not an indicator set (bad magic)")
    pos = len(_MAGIC)
    hlen = int.from_bytes(data[pos:pos + 4], "little")
    pos += 4
    header = json.loads(data[pos:pos + hlen])
    pos += hlen
    n4, n6 = header["ipv4"], header["ipv6"]
    v4s = np.frombuffer(data, "<u4", n4, pos).astype(np.int64)
    pos += 4 * n4
    v4e = np.frombuffer(data, "<u4", n4, pos).astype(np.int64)
    pos += 4 * n4
    pairs = []
    for _ in range(n6):
        pairs.append((int.from_bytes(data[pos:pos + 16], "big"),
                      int.from_bytes(data[pos + 16:pos + 32], "big")))
        pos += 32
    s6, e6 = unique_v6(pairs)
    blocks = []
    for key in ("domains", "urls"):
        blen = int.from_bytes(data[pos:pos + 8], "little")
        pos += 8
        text = data[pos:pos + blen].decode("utf-8")
        pos += blen
        blocks.append(tuple(text.split("\n")) if header[key] else ())
    return IndicatorSet(v4s, v4e, s6, e6, blocks[0], blocks[1])


def _cache_key(sha: str, format: FeedFormat, columns: Mapping[str, str] | None) -> str:
    ident = json.dumps([PARSER_VERSION, format, dict(columns or {}), sha], sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()


class BlobMissing(FileNotFoundError):
    """A hash names nothing in the store (a ``FileNotFoundError``, so callers that treat an
    unreadable set as "not there" keep doing so whatever the backend)."""


KINDS = frozenset({"feed", "iset", "json", "f64", "cache"})


class IntelStore:
    """Content-addressed blobs for the intel sync, in files under ``root``.

    Everything here is built on four blob primitives (``_put_blob``, ``_get_blob``, ``_has_blob``,
    ``_replace_blob``) and shared with :class:`~handrail.intel.store_pg.PostgresIntelStore`,
    which keeps the same blobs in PostgreSQL so every worker sees every set. Open one with
    :func:`handrail.intel.backends.open_store` (never by hand in worker code): it picks the
    backend the installation uses. File writes are atomic (temp file + rename).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def close(self) -> None:
        """Release what the store holds (nothing for files)."""

    def __enter__(self) -> IntelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # blob primitives (one per backend) ---------------------------------------------------
    def _path(self, kind: str, key: str) -> Path:
        if kind == "cache":
            return self.root / "intel-cache" / f"{key}.json"
        return self.root / f"{key}.{kind}"

    def _write(self, path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _put_blob(self, kind: str, key: str, data: bytes) -> None:
        """Store ``data`` under (kind, key) unless something is there already."""
        self._write(self._path(kind, key), data)

    def _get_blob(self, kind: str, key: str) -> bytes:
        try:
            return self._path(kind, key).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(f"no {kind} {key} in the intel store") from None

    def _has_blob(self, kind: str, key: str) -> bool:
        return self._path(kind, key).exists()

    def _replace_blob(self, kind: str, key: str, data: bytes) -> None:
        """Store ``data`` under (kind, key), replacing what is there (the parse cache only)."""
        path = self._path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def blob_keys(self, kind: str) -> list[str]:
        """Every key of one kind (for `handrail ledger migrate`)."""
        if kind not in KINDS:
            raise ValueError(f"not a blob kind of the intel store: {kind!r}")
        folder = self._path(kind, "x").parent
        suffix = self._path(kind, "x").suffix
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob(f"*{suffix}")
                      if len(p.stem) == 64 and _HEX.issuperset(p.stem))

    # content-addressed blobs -------------------------------------------------------------
    def put_blob(self, data: bytes, kind: str) -> str:
        """Store bytes under their own SHA-256; returns the hash."""
        if kind not in KINDS - {"cache"}:
            raise ValueError(f"not a blob kind of the intel store: {kind!r}")
        sha = hashlib.sha256(data).hexdigest()
        self._put_blob(kind, sha, data)
        return sha

    def get_blob(self, sha: str, kind: str) -> bytes:
        if kind not in KINDS - {"cache"}:
            raise ValueError(f"not a blob kind of the intel store: {kind!r}")
        return self._get_blob(kind, _check_sha(sha))

    def put_feed(self, data: bytes) -> str:
        sha = content_sha256(data)
        self._put_blob("feed", sha, data)
        return sha

    def get_feed(self, sha: str) -> bytes:
        return self._get_blob("feed", _check_sha(sha))

    def put_set(self, s: IndicatorSet) -> str:
        return self.put_blob(encode_set(s), "iset")

    def get_set(self, sha: str) -> IndicatorSet:
        return decode_set(self._get_blob("iset", _check_sha(sha)))

    def has_set(self, sha: str) -> bool:
        return self._has_blob("iset", _check_sha(sha))

    # normalisation with reuse ---------------------------------------------------------
    def normalize(self, data: bytes, *, feed: str, format: FeedFormat = "ipset",
                  columns: Mapping[str, str] | None = None) -> FeedParse:
        """Parse and store a feed, or reuse the stored result for identical content.

        Same content sha256 + same parser version + same format and mapping: the cached
        report is returned (``cached=True``) and nothing is parsed.
        """
        return self.normalize_with_set(data, feed=feed, format=format, columns=columns,
                                       load=False)[0]

    def normalize_with_set(self, data: bytes, *, feed: str, format: FeedFormat = "ipset",
                           columns: Mapping[str, str] | None = None, load: bool = True
                           ) -> tuple[FeedParse, IndicatorSet | None]:
        """:meth:`normalize`, also returning the set (read back only when cached and
        ``load``), so a caller in the same process need not decode what it just built."""
        sha = content_sha256(data)
        key = _cache_key(sha, format, columns)
        try:
            report = FeedParse.model_validate_json(self._get_blob("cache", key))
        except (BlobMissing, ValueError):
            report = None
        if report is not None and report.set_sha256 and self.has_set(report.set_sha256):
            report = report.model_copy(update={"feed": feed, "cached": True})
            return report, self.get_set(report.set_sha256) if load else None
        parsed = parse_feed(data, feed=feed, format=format, columns=columns)
        report = parsed.report.model_copy(update={"set_sha256": self.put_set(parsed.indicators)})
        self._replace_blob("cache", key, report.model_dump_json().encode())
        return report, parsed.indicators
