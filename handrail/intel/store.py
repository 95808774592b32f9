"""Content-addressed storage of feeds and normalized indicator sets.

Layout under ``store_dir`` (``handrail.ops.config.load_settings().store_dir``):

* ``<sha256>.feed`` — raw feed bytes, named by their own SHA-256.
* ``<sha256>.iset`` — a normalized :class:`IndicatorSet` in a small deterministic
  binary format (below), named by the SHA-256 of the file, so equal sets have equal
  hashes across runs and machines.
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
    if len(sha) != 64 or not _HEX.issuperset(sha):
        raise ValueError(f"not a sha256 hex digest: {sha!r}")
    return sha


def encode_set(s: IndicatorSet) -> bytes:
    """The canonical bytes of a set (the input to its content hash)."""
    header = json.dumps({"ipv4": s.ipv4, "ipv6": s.ipv6, "domains": len(s.domains),
                         "urls": len(s.urls)}, sort_keys=True).encode()
    v6 = b"".join(int(a).to_bytes(16, "big") + int(b).to_bytes(16, "big")
                  for a, b in zip(s.v6_start, s.v6_end))
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


class IntelStore:
    """Content-addressed blobs for the intel sync. Writes are atomic (temp file + rename)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @classmethod
    def from_settings(cls) -> IntelStore:
        from handrail.ops.config import load_settings

        return cls(load_settings().store_dir)

    # raw blobs --------------------------------------------------------------------
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

    def put_feed(self, data: bytes) -> str:
        sha = content_sha256(data)
        self._write(self.root / f"{sha}.feed", data)
        return sha

    def get_feed(self, sha: str) -> bytes:
        return (self.root / f"{_check_sha(sha)}.feed").read_bytes()

    def put_set(self, s: IndicatorSet) -> str:
        data = encode_set(s)
        sha = hashlib.sha256(data).hexdigest()
        self._write(self.root / f"{sha}.iset", data)
        return sha

    def get_set(self, sha: str) -> IndicatorSet:
        return decode_set((self.root / f"{_check_sha(sha)}.iset").read_bytes())

    def has_set(self, sha: str) -> bool:
        return (self.root / f"{_check_sha(sha)}.iset").exists()

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
        key_path = self.root / "intel-cache" / f"{_cache_key(sha, format, columns)}.json"
        if key_path.exists():
            report = FeedParse.model_validate_json(key_path.read_bytes())
            if report.set_sha256 and self.has_set(report.set_sha256):
                report = report.model_copy(update={"feed": feed, "cached": True})
                return report, self.get_set(report.set_sha256) if load else None
        parsed = parse_feed(data, feed=feed, format=format, columns=columns)
        report = parsed.report.model_copy(update={"set_sha256": self.put_set(parsed.indicators)})
        key_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = key_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(report.model_dump_json())
        os.replace(tmp, key_path)
        return report, parsed.indicators
