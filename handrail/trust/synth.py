"""Synthetic ledger history with a known shape, for baseline tests and the benchmark.

`SyntheticLedger` writes what the step gate would have written for each change (the
change row, `step.requested`, `guardrails.evaluated`, the approval events, `change.applied`
and any revert), buffered and inserted with executemany. The audit rows go through
`Ledger.append_new`, so they form the same valid hash chain as live ones.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

from handrail.gate.ledger import Ledger, canonical, iso
from handrail.gate.models import AuditEvent

T0 = datetime(2026, 9, 1, tzinfo=UTC)


class SyntheticLedger:
    """Buffered writer of gate-shaped history. Call `flush()` (or use it as a context manager)."""

    def __init__(self, ledger: Ledger, audit: bool = True, buffer: int = 50_000, prefix: str | None = None):
        self.ledger = ledger
        self.prefix = prefix or f"syn-{uuid.uuid4().hex[:8]}"
        self.audit = audit
        self.buffer = buffer
        self._changes: list[tuple] = []
        self._reverts: list[tuple] = []
        self._events: list[AuditEvent] = []
        self._seq = 0
        self.rows = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()

    # -- primitives ------------------------------------------------------------------------
    def event(self, run_id: str, step_id: str | None, name: str, at: datetime, **data: Any) -> None:
        self.event_data(run_id, step_id, name, at, data)

    def event_data(self, run_id: str, step_id: str | None, name: str, at: datetime, data: dict,
                   event_id: str | None = None) -> None:
        """`event_id` gives change and revert events the gate's ids, so their records verify."""
        if not self.audit:
            return
        self._seq += 1
        self._events.append(AuditEvent(id=event_id or f"{self.prefix}-{self._seq}", at=at, run_id=run_id,
                                       step_id=step_id, event=name, data=data))
        if len(self._events) >= self.buffer:
            self._flush_events()

    def change(
        self,
        kind: str,
        at: datetime,
        *,
        run_id: str,
        step_id: str,
        mode: str = "logged",
        target: str | None = None,
        inverse_kind: str | None = None,
        requested_by: str = "handrail",
        approved_by: tuple[str, ...] = (),
        status: str = "applied",
        verdicts: list[dict[str, Any]] | None = None,
        outcome: str = "allow",
    ) -> str:
        """One change through the gate (guardrails evaluated, then applied); returns its id."""
        change_id = f"{run_id}/{step_id}"
        target = target or f"t-{change_id}"
        change = {"kind": kind, "target": target, "params": {}}
        inverse = {"kind": inverse_kind or kind + ".undo", "target": target, "params": {}}
        record = {
            "change_id": change_id, "run_id": run_id, "step_id": step_id, "change": change, "status": status,
            "before": {"present": False}, "after": {"present": True},
            "inverse": inverse if status == "applied" else None, "mode": mode, "requested_by": requested_by,
            "approved_by": list(approved_by), "applied_at": iso(at), "expires_at": None,
            "reverted_at": None, "reverted_by": None,
        }
        self._changes.append((change_id, run_id, step_id, kind, target, mode, int(mode != "approve"), iso(at),
                              None, canonical(record)))
        self.event(run_id, step_id, "step.requested", at, change=change)
        self.event(run_id, step_id, "guardrails.evaluated", at, kind=kind, mode=mode, outcome=outcome,
                   verdicts=verdicts or [])
        self.event_data(run_id, step_id, "change." + status, at, record, event_id=f"{change_id}:change.{status}")
        if len(self._changes) >= self.buffer:
            self._flush_changes()
        return change_id

    def gate_refusal(self, kind: str, at: datetime, *, run_id: str, step_id: str, mode: str,
                     outcome: str, guardrail: str) -> None:
        """A step a guardrail denied (nothing changed) or held (a human was asked)."""
        verdict = {"guardrail": guardrail, "outcome": outcome, "reason": "synthetic", "alert": False,
                   "threshold": None, "threshold_source": None}
        self.event(run_id, step_id, "step.requested", at, change={"kind": kind, "target": "x", "params": {}})
        self.event(run_id, step_id, "guardrails.evaluated", at, kind=kind, mode=mode, outcome=outcome,
                   verdicts=[verdict])
        if outcome == "deny":
            self.event(run_id, step_id, "step.denied", at, kind=kind, reason="synthetic")

    def approval(self, kind: str, at: datetime, *, run_id: str, step_id: str, latency_s: float,
                 result: str = "approved", by: str = "alice", escalated: bool = False) -> datetime:
        """An approval asked at `at` and answered (approved/denied) or timed out after `latency_s`."""
        done = at + timedelta(seconds=latency_s)
        self.event(run_id, step_id, "approval.requested", at, kind=kind, why="policy mode is approve",
                   required=1, approvers={"users": [], "roles": ["soc-analyst"]}, timeout_s=14400)
        if escalated:
            self.event(run_id, step_id, "approval.escalated", at + timedelta(seconds=latency_s / 2), kind=kind)
        if result == "timeout":
            self.event(run_id, step_id, "approval.timeout", done, kind=kind, applied="deny")
        else:
            self.event(run_id, step_id, "approval.decided", done, kind=kind, approved=result == "approved",
                       by=[by])
            if result == "denied":
                self.event(run_id, step_id, "step.denied", done, kind=kind, reason=f"denied by {by}")
        return done

    def revert(self, change_id: str, run_id: str, reason: str, by: str, at: datetime) -> None:
        self._reverts.append((change_id, run_id, reason, by, iso(at), 1, "synthetic"))
        self.event_data(run_id, None, "change.reverted", at, dict(change_id=change_id, reason=reason, by=by,
                        verified=True, detail="synthetic"), event_id=f"{change_id}:reverted:change.reverted")

    # -- writing ---------------------------------------------------------------------------
    def _flush_changes(self) -> None:
        if self._changes:
            self.rows += self.ledger.insert_change_rows(self._changes)
            self._changes = []

    def _flush_events(self) -> None:
        if self._events:
            self.rows += self.ledger.append_new(self._events)
            self._events = []

    def flush(self) -> None:
        before = self.rows
        self._flush_changes()
        if self._reverts:
            self.rows += self.ledger.insert_revert_rows(self._reverts)
            self._reverts = []
        self._flush_events()
        if self.rows - before >= 1000:
            self.ledger.refresh_statistics()  # PostgreSQL: plan the reports for the rows just loaded


# -- the benchmark ledger -----------------------------------------------------------------
BENCH_DAYS = 120  # history spans at most this long; more rows make it busier
BENCH_KINDS = [  # kind, mode, mean changes per busy hour (before scaling)
    ("dns.sinkhole", "logged", 6.0),
    ("firewall.egress_block", "approve", 2.0),
    ("firewall.egress_unblock", "guarded", 3.0),
    ("proxy.block", "guarded", 5.0),
    ("ips.deploy_rule", "guarded", 1.5),
    ("iam.revoke_privilege", "guarded", 1.0),
    ("nac.disconnect", "guarded", 1.0),
    ("training.enroll", "guarded", 4.0),
    ("edr.isolate", "approve", 0.5),
]


def build_bench_ledger(path: Path, rows: int, seed: int = 7, audit: bool = True) -> dict[str, Any]:
    """About `rows` ledger rows (changes + audit + reverts) of months of mixed, seeded history."""
    rng = random.Random(seed)
    ledger = Ledger(path)
    per_change = 4.95 if audit else 1.25  # rows each change brings with it, on average
    target_changes = int(rows / per_change)
    hourly_mean = sum(rate for _, _, rate in BENCH_KINDS) * 0.7  # nights run at 40 %
    hours = max(24, min(BENCH_DAYS * 24, int(target_changes / hourly_mean)))
    scale = max(1.0, target_changes / (hourly_mean * hours))  # busier, not longer, beyond BENCH_DAYS
    if ledger.backend == "sqlite":
        ledger.read("PRAGMA cache_size = -262144")  # 256 MiB while building: random-key index inserts
    started = time.perf_counter()
    syn = SyntheticLedger(ledger, audit=audit)
    made = 0
    for h in range(hours):
        at = T0 + timedelta(hours=h)
        busy = 1.0 if 8 <= at.hour < 20 else 0.4
        for kind, mode, rate in BENCH_KINDS:
            n = int(rng.expovariate(1 / (rate * busy * scale)) + 0.5)
            if n == 0:
                continue
            run_id = f"bench-{kind}-{h}"
            if audit:
                syn.event(run_id, None, "run.started", at, runbook="bench", requested_by="handrail", subject=kind)
            for i in range(n):
                when = at + timedelta(seconds=i * 7 % 3600)
                step = f"s{i:03d}"
                if mode == "approve":
                    when = syn.approval(kind, when, run_id=run_id, step_id=step, latency_s=rng.randint(30, 3600),
                                        result="denied" if rng.random() < 0.03 else "approved")
                cid = syn.change(kind, when, run_id=run_id, step_id=step, mode=mode,
                                 target=f"{kind}-{rng.randrange(1_000_000)}",
                                 inverse_kind=kind.replace("block", "unblock"))
                roll = rng.random()
                if roll < 0.25:
                    syn.revert(cid, run_id, "expiry", "handrail-ttl", when + timedelta(days=7))
                elif roll < 0.252:
                    syn.revert(cid, run_id, "rollback", "bob", when + timedelta(hours=2))
                made += 1
            if audit:
                syn.event(run_id, None, "run.finished", at, state="completed", error=None, changes=[])
    syn.flush()
    built = time.perf_counter() - started
    total = ledger.query("ROW_COUNT")[0][0]
    ledger.close()
    return {"rows": total, "changes": made, "hours": hours, "build_s": round(built, 2),
            "now": T0 + timedelta(hours=hours)}


def bench_baseline(rows: int = 1_000_000, directory: Path | None = None, audit: bool = True) -> dict[str, Any]:
    """Build a synthetic ledger of about `rows` rows in a temp dir and time the full baseline.

    Measures, never asserts: returns the seconds for `compute_baseline` over everything and
    for one `derive_thresholds` call (the per-step cost in a worker without the cache).
    """
    from handrail.trust.baseline import compute_baseline, derive_thresholds

    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = Path(tmp) / "ledger.db"
        info = build_bench_ledger(path, rows, audit=audit)
        ledger = Ledger(path)  # reopened: a cold connection, as the CLI has
        started = time.perf_counter()
        baseline = compute_baseline(ledger, info["now"])
        info["baseline_s"] = round(time.perf_counter() - started, 3)
        rail = {"type": "rate_limit", "per_hour": 500, "baseline": {"stat": "p99_hourly", "factor": 1.5}}
        started = time.perf_counter()
        derive_thresholds(ledger, "dns.sinkhole", [rail], info["now"])
        info["derive_s"] = round(time.perf_counter() - started, 3)
        info["kinds"] = len(baseline.kinds)
        ledger.close()
    info["now"] = info["now"].isoformat()
    return info


# -- the known shape (tests) ----------------------------------------------------------------
KNOWN_T0 = datetime(2026, 10, 1, tzinfo=UTC)
KNOWN_DAYS = 21
KNOWN_NOW = KNOWN_T0 + timedelta(days=KNOWN_DAYS)


def build_known_ledger(ledger: Ledger) -> None:
    """Three weeks (2026-10-01 .. 10-21 UTC) of history whose figures are known by hand.

    - dns.sinkhole (logged): 3 changes an hour 08-19h and 1 an hour 20-23h, every day, one
      run per hour; on day 10 at 12h a burst of 30. 867 changes; 3 guardrail denials
      (never_touch, days 0, 7, 14 at 10h); day 0's 40 changes expire after a day.
    - firewall.egress_block (approve): one change an hour 09-16h, each its own run, each
      approved by alice after 600 s; 2 requests denied after 1200 s (days 3 and 12, 17h)
      and 1 timed out after 4 h (day 5, 18h). 168 changes.
    - proxy.block (logged): 2 changes at 10h and 2 at 15h a day (84); one rolled back by
      bob on day 15.
    - nac.disconnect (guarded): 2 changes at 11h on days 1..20 (40); two rolled back by bob,
      one reversed by a human-approved nac.reconnect of the same host in another run.
    - edr.isolate (approve, pinned in the test policy): 3 approved changes at 14h a day (63).
    - training.enroll (logged): 20 changes at 09h on days 16..20 only (100).
    """
    syn = SyntheticLedger(ledger)
    day = timedelta(days=1)
    for d in range(KNOWN_DAYS):
        base = KNOWN_T0 + d * day
        for h in range(24):
            n = 3 if 8 <= h <= 19 else 1 if h >= 20 else 0
            if (d, h) == (10, 12):
                n = 30
            run = f"dns-{d:02d}-{h:02d}"
            for i in range(n):
                at = base + timedelta(hours=h, seconds=10 * i)
                cid = syn.change("dns.sinkhole", at, run_id=run, step_id=f"s{i:02d}", mode="logged")
                if d == 0:
                    syn.revert(cid, run, "expiry", "handrail-ttl", at + day)
        if d % 7 == 0:
            syn.gate_refusal("dns.sinkhole", base + timedelta(hours=10, minutes=30), run_id=f"dns-deny-{d}",
                             step_id="s01", mode="logged", outcome="deny", guardrail="never_touch")
        for h in range(9, 17):
            run = f"fw-{d:02d}-{h:02d}"
            done = syn.approval("firewall.egress_block", base + timedelta(hours=h), run_id=run, step_id="s01",
                                latency_s=600)
            syn.change("firewall.egress_block", done, run_id=run, step_id="s01", mode="approve",
                       requested_by="bob", approved_by=("alice",))
        if d in (3, 12):
            syn.approval("firewall.egress_block", base + timedelta(hours=17), run_id=f"fw-{d:02d}-17",
                         step_id="s01", latency_s=1200, result="denied")
        if d == 5:
            syn.approval("firewall.egress_block", base + timedelta(hours=18), run_id="fw-05-18", step_id="s01",
                         latency_s=14400, result="timeout")
        for h in (10, 15):
            run = f"proxy-{d:02d}-{h:02d}"
            for i in range(2):
                at = base + timedelta(hours=h, minutes=i)
                cid = syn.change("proxy.block", at, run_id=run, step_id=f"s{i:02d}", mode="logged")
                if (d, h, i) == (15, 10, 0):
                    syn.revert(cid, run, "rollback", "bob", at + timedelta(hours=2))
        if d >= 1:
            run = f"nac-{d:02d}"
            for i in range(2):
                at = base + timedelta(hours=11, minutes=i)
                cid = syn.change("nac.disconnect", at, run_id=run, step_id=f"s{i:02d}", mode="guarded",
                                 target=f"host-{d}-{i}", inverse_kind="nac.reconnect")
                if (d, i) in ((4, 0), (9, 1)):
                    syn.revert(cid, run, "rollback", "bob", at + timedelta(hours=1))
                if (d, i) == (7, 0):
                    syn.change("nac.reconnect", at + timedelta(hours=3), run_id="human-reconnect",
                               step_id="s01", mode="approve", target=f"host-{d}-{i}", requested_by="carol",
                               approved_by=("alice",))
        for i in range(3):
            run = f"edr-{d:02d}-{i}"
            done = syn.approval("edr.isolate", base + timedelta(hours=14, minutes=i), run_id=run, step_id="s01",
                                latency_s=300, by="bob")
            syn.change("edr.isolate", done, run_id=run, step_id="s01", mode="approve", requested_by="alice",
                       approved_by=("bob",))
        if d >= 16:
            for i in range(20):
                syn.change("training.enroll", base + timedelta(hours=9, seconds=i), run_id=f"train-{d}",
                           step_id=f"s{i:02d}", mode="logged")
    syn.flush()


def steady_history(ledger: Ledger, kind: str, now: datetime, *, days: int = 21, per_hour: int = 4,
                   recent: int = 0, mode: str = "logged") -> None:
    """`per_hour` changes at the start of every full UTC hour of the last `days` days, plus
    `recent` changes a minute before `now` (what the rate_limit guardrail sees as the last hour).

    For end-to-end tests of derived thresholds: p99 of hourly changes is `per_hour`, and the
    history itself adds nothing to the last hour's count unless `now` is a few seconds past the hour.
    """
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    with SyntheticLedger(ledger) as syn:
        for k in range(1, days * 24 + 1):
            start = hour - timedelta(hours=k)
            for i in range(per_hour):
                syn.change(kind, start + timedelta(seconds=i), run_id=f"steady-{kind}-{k}", step_id=f"s{i:02d}",
                           mode=mode)
        for i in range(recent):
            syn.change(kind, now - timedelta(minutes=1, seconds=i), run_id=f"steady-{kind}-recent",
                       step_id=f"s{i:02d}", mode=mode)
