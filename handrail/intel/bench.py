"""Benchmark of the intel sync pass against FireHOL's ``iprange`` and a ``sort`` floor.

``python -m handrail.intel.bench --feeds 5 --indicators 1000000 --json``

On the same seeded synthetic feed files (IPv4 addresses and networks, some IPv6,
cross-feed overlaps, ~1% garbage lines, comments) it measures:

* **handrail** — the pass exactly as the sync runs it (:func:`run_sync_pass`: parse and
  normalise every feed, store the sets, guardrails, consensus), cold store, in a child
  process (``--pass-only``) timed from the outside, so interpreter start-up and imports
  count, as they do for the peers. Peak memory is the child's own ``ru_maxrss``.
* **iprange** — ``iprange --common a b`` for every pair of feeds, then ``iprange`` over all
  pair results (union): the 2-or-more-feeds consensus, IPv4 only. It reads copies of the
  same files without their IPv6 lines (made before its clock starts): iprange is
  IPv4-only and takes ``2400:ab::1`` for a host name ``2400`` to resolve, which costs
  each invocation a DNS-thread wait of up to a second — an artefact that would flatter
  Handrail — and resolving indicators is not allowed anyway. Skipped, with a note and a
  null ratio, when ``iprange`` is not installed (``apt-get install iprange``).
* **floor** — ``LC_ALL=C sort -u`` per feed, then ``sort -m | uniq -d``: exact-text
  matches only, the least work any consensus can do.

The synthetic garbage is numeric only: ``iprange`` resolves anything that looks like a
host name through DNS, and indicators are never to be resolved. The bench checks its
input for host-name-like lines before running iprange, and refuses if it finds one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH_PROTECTED = {"161.71.0.0/16": "SaaS CRM", "146.75.0.0/16": "largest customer"}
_OCT = [str(i) for i in range(256)]
_HOSTNAME_LIKE = re.compile(rb"(?m)^[ \t]*[0-9./]*[A-Za-z_]")


# synthetic feeds ---------------------------------------------------------------------
def _v4_text(a: np.ndarray) -> list[str]:
    o = _OCT
    return [f"{o[x >> 24]}.{o[(x >> 16) & 255]}.{o[(x >> 8) & 255]}.{o[x & 255]}"
            for x in a.tolist()]


def _net_text(base: np.ndarray, plen: np.ndarray) -> list[str]:
    return [f"{t}/{p}" for t, p in zip(_v4_text(base), plen.tolist(), strict=False)]


def _random_networks(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    plen = rng.integers(16, 31, size=n)
    addr = rng.integers(1 << 24, 224 << 24, size=n, dtype=np.int64)
    base = addr & ~((np.int64(1) << (32 - plen)) - 1)
    return base, plen


_V6_FIRST = [0x2001] + list(range(0x2400, 0x240A)) + list(range(0x2600, 0x260A)) + list(
    range(0x2800, 0x280A))  # real RIR blocks (2001::/16, 2400::/12, 2600::/12, 2800::/12)


def _v6_lines(rng: np.random.Generator, n: int) -> list[str]:
    first = rng.choice(_V6_FIRST, size=n)
    h = rng.integers(0, 0x10000, size=(n, 3))
    net = rng.random(n) < 0.3
    out = []
    for f, (a, b, c), is_net in zip(first.tolist(), h.tolist(), net.tolist(), strict=True):
        out.append(f"{f:x}:{a:x}:{b:x}::/48" if is_net else f"{f:x}:{a:x}:{b:x}::{c:x}")
    return out


def _garbage_lines(rng: np.random.Generator, n: int) -> list[str]:
    kinds = rng.integers(0, 7, size=n)
    a = rng.integers(1, 224, size=(n, 4))
    out = []
    for k, (w, x, y, z) in zip(kinds.tolist(), a.tolist(), strict=True):
        out.append([
            f"{w + 300}.{x}.{y}.{z}",           # octet out of range
            f"{w}.{x}.{y}.0/33",                # prefix too long
            f"{w}.{x}.{y}.{z | 1}/24",          # host bits set
            f"0{w}.{x}.{y}.{z}",                # leading zero
            f"{w}..{y}.{z}",                    # empty octet
            f"{w}.{x}.{y}.{z}/",                # empty prefix
            f"{w}.{x}.{y}",                     # three octets
        ][k])
    return out


def generate_feeds(workdir: Path, feeds: int = 5, indicators: int = 1_000_000,
                   seed: int = 1) -> list[Path]:
    """Write ``feeds`` files with ``indicators`` entry lines in total (header comments
    come on top, as in FireHOL files). Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    shared_addr = rng.integers(1 << 24, 224 << 24, size=max(indicators // 4, 1), dtype=np.int64)
    pool_base, pool_plen = _random_networks(rng, max(indicators // 200, 1))
    shared_v6 = _v6_lines(rng, max(indicators // 400, 1))
    paths = []
    for f in range(feeds):
        n = indicators // feeds + (1 if f < indicators % feeds else 0)
        n_garbage = n // 100
        n_v6 = n // 50
        n_net = n // 12
        n_in_net = n // 20
        n_shared = int(n * 0.45)
        n_unique = max(n - n_garbage - n_v6 - n_net - n_in_net - n_shared, 0)
        lines: list[str] = []
        lines += _v4_text(rng.choice(shared_addr, size=n_shared))
        pick = rng.integers(0, pool_base.size, size=n_in_net)
        span = (np.int64(1) << (32 - pool_plen[pick]))
        lines += _v4_text(pool_base[pick] + (rng.random(n_in_net) * span).astype(np.int64))
        half = n_net // 2
        pick = rng.integers(0, pool_base.size, size=half)
        lines += _net_text(pool_base[pick], pool_plen[pick])
        lines += _net_text(*_random_networks(rng, n_net - half))
        lines += _v4_text(rng.integers(1 << 24, 224 << 24, size=n_unique, dtype=np.int64))
        nv6_shared = n_v6 // 2
        lines += [shared_v6[i] for i in rng.integers(0, len(shared_v6), size=nv6_shared)]
        lines += _v6_lines(rng, n_v6 - nv6_shared)
        lines += _garbage_lines(rng, n_garbage)
        if f == 0 and lines:
            lines[-1] = "146.0.0.0/8"  # a faulty entry covering a protected network
        order = rng.permutation(len(lines))
        lines = [lines[i] for i in order.tolist()]
        for i in range(0, len(lines), 500):  # an inline comment now and then
            lines[i] += " # seen again"
        header = [f"# synthetic feed {f} (seed {seed})", "#", f"# Entries: {len(lines)}", "#"]
        path = workdir / f"feed{f}.netset"
        path.write_text("\n".join(header + lines) + "\n")
        paths.append(path)
    return paths


# the measured pass -----------------------------------------------------------------
def _pass_only(files: list[str], store_dir: str, threshold: float) -> dict:
    """The sync pass in this process; prints counts, its own time and peak RSS."""
    from handrail.intel.models import FeedSpec
    from handrail.intel.pipeline import run_sync_pass
    from handrail.intel.store import IntelStore

    t0 = time.perf_counter()
    feeds = [(FeedSpec(name=Path(p).stem, format="netset"), Path(p).read_bytes()) for p in files]
    result = run_sync_pass(feeds, IntelStore(store_dir), protected=BENCH_PROTECTED,
                           threshold=threshold)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "validated": result.consensus.validated.total,
        "suspect": result.consensus.suspect.total,
        "rejected": result.rejected,
        "dropped": result.dropped,
        "faulty_feeds": [g.feed for g in result.guardrails if g.faulty],
        "validated_sha256": result.consensus.validated_sha256,
        "suspect_sha256": result.consensus.suspect_sha256,
        "cached_feeds": sum(1 for f in result.feeds if f.cached),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_pass_child(files: list[Path], store_dir: Path, threshold: float) -> tuple[float, dict]:
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "handrail.intel.bench", "--pass-only", "--store",
           str(store_dir), "--threshold", str(threshold), *map(str, files)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=root)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"handrail pass failed: {proc.stderr.strip()[-2000:]}")
    return wall, json.loads(proc.stdout)


# peers -----------------------------------------------------------------------------
def _iprange(files: list[Path], out_dir: Path) -> tuple[float | None, str | None]:
    exe = shutil.which("iprange")
    if exe is None:
        return None, "iprange not installed (apt-get install iprange)"
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = []
    for p in files:  # IPv4-only copies, prepared before the clock starts (see docstring)
        data = b"".join(ln for ln in p.read_bytes().splitlines(keepends=True) if b":" not in ln)
        if _HOSTNAME_LIKE.search(data):
            return None, f"iprange skipped: {p.name} has host-name-like lines it would resolve"
        copy = out_dir / f"v4-{p.name}"
        copy.write_bytes(data)
        inputs.append(copy)
    files = inputs
    t0 = time.perf_counter()
    pairs = []
    for i in range(len(files)):
        for j in range(i + 1, len(files)):
            out = out_dir / f"common-{i}-{j}.netset"
            with out.open("wb") as fh:
                subprocess.run([exe, "--common", str(files[i]), str(files[j])], stdout=fh,
                               stderr=subprocess.DEVNULL, check=True)
            pairs.append(str(out))
    with (out_dir / "consensus.netset").open("wb") as fh:
        if pairs:
            subprocess.run([exe, *pairs], stdout=fh, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0, None


def _floor(files: list[Path], out_dir: Path) -> float:
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LC_ALL="C")
    t0 = time.perf_counter()
    sorted_files = []
    for p in files:
        out = out_dir / f"{p.stem}.sorted"
        subprocess.run(["sort", "-u", "-o", str(out), str(p)], env=env, check=True)
        sorted_files.append(str(out))
    with (out_dir / "common.txt").open("wb") as fh:
        merge = subprocess.Popen(["sort", "-m", *sorted_files], stdout=subprocess.PIPE, env=env)
        subprocess.run(["uniq", "-d"], stdin=merge.stdout, stdout=fh, env=env, check=True)
        assert merge.stdout is not None
        merge.stdout.close()
        merge.wait()
    return time.perf_counter() - t0


def run_intel_bench(feeds: int = 5, indicators: int = 1_000_000, seed: int = 1,
                    workdir: Path | str | None = None, threshold: float = 2.0,
                    repeat: int = 1) -> dict:
    """Generate the feeds, run handrail, iprange and the floor on them; return the report.

    With ``repeat`` > 1 the three contenders run in interleaved rounds and each reports
    its best round (the machine may be shared; the minimum is the least disturbed run).

    With ``workdir`` the files stay there (``feeds/``, ``store/``, ``peer-*``) for
    inspection; without, a temporary directory is used and removed.
    """
    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="handrail-intel-bench-")
        base = Path(tmp)
    else:
        base = Path(workdir)
        base.mkdir(parents=True, exist_ok=True)
    try:
        files = generate_feeds(base / "feeds", feeds, indicators, seed)
        store = base / "store"
        hr_runs, ipr_runs, floor_runs = [], [], []
        ipr_note = None
        for _ in range(max(repeat, 1)):  # interleaved rounds, best of each contender
            shutil.rmtree(store, ignore_errors=True)  # cold: nothing cached
            hr_runs.append(_run_pass_child(files, store, threshold))
            ipr_seconds, ipr_note = _iprange(files, base / "peer-iprange")
            if ipr_seconds is not None:
                ipr_runs.append(ipr_seconds)
            floor_runs.append(_floor(files, base / "peer-floor"))
        hr_seconds, hr = min(hr_runs, key=lambda r: r[0])
        ipr_seconds = min(ipr_runs) if ipr_runs else None
        floor_seconds = min(floor_runs)
        cached_seconds, cached = _run_pass_child(files, store, threshold)
        report = {
            "feeds": feeds,
            "indicators": indicators,
            "handrail_seconds": round(hr_seconds, 4),
            "handrail_peak_mb": round(hr["peak_mb"], 1),
            "iprange_seconds": None if ipr_seconds is None else round(ipr_seconds, 4),
            "floor_seconds": round(floor_seconds, 4),
            "ratio_to_iprange": None if ipr_seconds is None else round(hr_seconds / ipr_seconds, 3),
            "ratio_to_floor": round(hr_seconds / floor_seconds, 3),
            "validated": hr["validated"],
            "suspect": hr["suspect"],
            "rejected": hr["rejected"],
            # extras
            "handrail_in_process_seconds": round(hr["seconds"], 4),
            "handrail_cached_seconds": round(cached_seconds, 4),
            "cached_feeds": cached["cached_feeds"],
            "guardrail_dropped": hr["dropped"],
            "faulty_feeds": hr["faulty_feeds"],
            "validated_sha256": hr["validated_sha256"],
            "suspect_sha256": hr["suspect_sha256"],
            "iprange_note": ipr_note,
            "seed": seed,
            "repeat": max(repeat, 1),
            "handrail_peak_mb_max": round(max(r[1]["peak_mb"] for r in hr_runs), 1),
            "feed_files": [str(p) for p in files] if tmp is None else [],
        }
        return report
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m handrail.intel.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=5)
    ap.add_argument("--indicators", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threshold", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3,
                    help="interleaved rounds; each contender reports its best (default 3)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--pass-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.pass_only:
        if not args.store or not args.files:
            ap.error("--pass-only needs --store and feed files")
        print(json.dumps(_pass_only(args.files, args.store, args.threshold)))
        return 0
    if args.feeds < 1 or args.indicators < 1:
        ap.error("--feeds and --indicators must be positive")
    report = run_intel_bench(args.feeds, args.indicators, args.seed, args.workdir,
                             args.threshold, args.repeat)
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            if k != "feed_files":
                print(f"{k:28} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
