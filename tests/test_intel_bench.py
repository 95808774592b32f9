"""Smoke test of the intel benchmark: JSON shape, and its consensus against brute force.

Not a timing test: the numbers it reports are not asserted.
"""

from __future__ import annotations

import bisect
import ipaddress
from pathlib import Path

import pytest

from handrail.intel.bench import BENCH_PROTECTED, main, run_intel_bench
from handrail.intel.guardrails import SPECIAL_V4, SPECIAL_V6, SPECIAL_V6_COARSE
from handrail.intel.store import IntelStore

pytestmark = pytest.mark.unit

KEYS = {"feeds", "indicators", "handrail_seconds", "handrail_peak_mb", "iprange_seconds",
        "floor_seconds", "ratio_to_iprange", "ratio_to_floor", "validated", "suspect",
        "rejected"}


def _brute_force(files: list[Path]) -> tuple[set[str], set[str], int]:
    """Plain ipaddress, no numpy: parse, drop guarded entries, count naming feeds."""
    blocked = [ipaddress.ip_network(c) for c, _ in SPECIAL_V4 + SPECIAL_V6 + SPECIAL_V6_COARSE]
    blocked += [ipaddress.ip_network(c) for c in BENCH_PROTECTED]
    feeds, rejected = [], 0
    for path in files:
        entries = set()
        for line in path.read_text().splitlines():
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                net = ipaddress.ip_network(text, strict=True)
            except ValueError:
                rejected += 1
                continue
            if not any(net.version == b.version and net.overlaps(b) for b in blocked):
                entries.add(net)
        feeds.append(entries)
    unions = []  # per feed and family: the collapsed union as sorted (first, last) pairs
    for entries in feeds:
        unions.append({v: [(int(m.network_address), int(m.broadcast_address))
                           for m in ipaddress.collapse_addresses(
                               n for n in entries if n.version == v)] for v in (4, 6)})
    validated, suspect = set(), set()
    for cand in set().union(*feeds):
        lo, hi = int(cand.network_address), int(cand.broadcast_address)
        named = 0
        for u in unions:
            blocks = u[cand.version]
            i = bisect.bisect_right(blocks, (lo, float("inf"))) - 1
            named += i >= 0 and blocks[i][0] <= lo and hi <= blocks[i][1]
        text = str(cand.network_address) if cand.num_addresses == 1 else str(cand)
        (validated if named >= 2 else suspect).add(text)
    return validated, suspect, rejected


def test_bench_smoke_matches_brute_force(tmp_path):
    report = run_intel_bench(feeds=3, indicators=3000, seed=4, workdir=tmp_path)
    assert KEYS <= set(report)
    assert (report["feeds"], report["indicators"]) == (3, 3000)
    assert report["handrail_seconds"] > 0 and report["handrail_peak_mb"] > 0
    assert report["floor_seconds"] > 0 and report["ratio_to_floor"] > 0
    if report["iprange_seconds"] is None:
        assert report["ratio_to_iprange"] is None
        assert "apt-get install iprange" in report["iprange_note"]
    else:
        assert report["ratio_to_iprange"] > 0
    files = [Path(p) for p in report["feed_files"]]
    assert len(files) == 3
    entry_lines = sum(1 for p in files for ln in p.read_text().splitlines()
                      if ln and not ln.startswith("#"))
    assert entry_lines == 3000
    validated, suspect, rejected = _brute_force(files)
    assert report["rejected"] == rejected > 0
    assert (report["validated"], report["suspect"]) == (len(validated), len(suspect))
    store = IntelStore(tmp_path / "store")
    assert set(store.get_set(report["validated_sha256"]).as_text()) == validated
    assert set(store.get_set(report["suspect_sha256"]).as_text()) == suspect
    assert len(validated) > 10 and report["cached_feeds"] == 3


def test_bench_without_iprange(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("handrail.intel.bench.shutil.which", lambda name: None)
    assert main(["--feeds", "2", "--indicators", "400", "--json", "--repeat", "1",
                 "--workdir", str(tmp_path)]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["iprange_seconds"] is None and report["ratio_to_iprange"] is None
    assert report["iprange_note"] == "iprange not installed (apt-get install iprange)"
