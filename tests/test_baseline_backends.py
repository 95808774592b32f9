"""The same ledger on SQLite and on PostgreSQL gives the same baseline, advice, review and reconciler view.

The report queries are written twice (json_extract and INDEXED BY on SQLite, jsonb and
expression indexes on PostgreSQL); this holds them to identical results on a synthetic
ledger of known shape (handrail.trust.synth), written to both backends the same way.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from handrail.gate.ledger import Ledger
from handrail.gate.ledger_postgres import PostgresLedger
from handrail.gate.models import AuditEvent, Mode
from handrail.gate.policy import parse_policy
from handrail.gate.reconcile import expired_changes, latest_changes
from handrail.trust.advice import advise, evidence_for, known_kinds, mode_starts
from handrail.trust.baseline import compute_baseline, derive_thresholds
from handrail.trust.review import pending
from handrail.trust.synth import KNOWN_NOW, KNOWN_T0, SyntheticLedger, build_known_ledger
from tests.pg_support import new_database

pytestmark = pytest.mark.postgres

POLICY = parse_policy("""
[users]
alice = { roles = ["soc-analyst"] }

[actions."dns.sinkhole"]
mode = "logged"
guardrails = [
  { type = "rate_limit", per_hour = 500, baseline = { stat = "p99_hourly", factor = 1.5, floor = 2, min_days = 14 } },
  { type = "per_run_limit", per_run = 20, baseline = { stat = "p99_per_run", factor = 2, min_days = 14 } },
]

[actions."firewall.egress_block"]
mode = "approve"
""")


def _write(ledger) -> None:
    build_known_ledger(ledger)
    with SyntheticLedger(ledger, prefix="extra") as syn:  # a held step with two verdicts, an expiring change
        syn.gate_refusal("proxy.block", KNOWN_T0 + timedelta(days=9, hours=3), run_id="proxy-held", step_id="s01",
                         mode="logged", outcome="hold", guardrail="rate_limit")
        syn.approval("proxy.block", KNOWN_T0 + timedelta(days=3), run_id="proxy-esc", step_id="s01",
                     latency_s=1801, escalated=True, result="denied")
    ledger.append([AuditEvent(id="exfil-1", at=KNOWN_T0, run_id="exf-1", event="exfiltration.classified",
                              data={"user": "mramirez", "alert": "DLP-1", "verdict": "malicious"}),
                   AuditEvent(id="mode-1", at=KNOWN_T0 + timedelta(days=5), run_id="handrail-trust",
                              event="trust.mode_changed", data={"kind": "proxy.block", "to": "logged"})])


@pytest.fixture(scope="module")
def pair(tmp_path_factory, postgres_url):
    sqlite = Ledger(tmp_path_factory.mktemp("pair") / "ledger.db")
    postgres = PostgresLedger(new_database(postgres_url))
    for ledger in (sqlite, postgres):
        _write(ledger)
    yield sqlite, postgres
    sqlite.close()
    postgres.close()


def _figures(baseline) -> list[dict]:
    return [json.loads(k.model_dump_json()) | {"series": k.series} for k in baseline.kinds]


def test_both_backends_hold_the_same_chain(pair):
    sqlite, postgres = pair
    assert sqlite.verify().ok and postgres.verify().ok
    assert sqlite.head()[0] == postgres.head()[0] > 4000


@pytest.mark.parametrize("since, kinds", [
    (None, None),
    (KNOWN_T0 + timedelta(days=7), None),
    (None, ["dns.sinkhole", "nac.disconnect", "firewall.egress_block", "proxy.block"]),
])
def test_compute_baseline_is_equal_on_both_backends(pair, since, kinds):
    sqlite, postgres = pair
    expected = _figures(compute_baseline(sqlite, KNOWN_NOW, since, kinds))
    assert expected and any(k["overrides"] for k in expected) and any(k["guardrails"]["held"] for k in expected)
    assert _figures(compute_baseline(postgres, KNOWN_NOW, since, kinds)) == expected


def test_thresholds_advice_review_and_reconciler_are_equal_on_both_backends(pair):
    sqlite, postgres = pair
    rails = POLICY.guardrails_for("dns.sinkhole")

    def view(ledger) -> dict:
        return {
            "thresholds": derive_thresholds(ledger, "dns.sinkhole", rails, KNOWN_NOW),
            "advice": [a.model_dump(mode="json") for a in advise(ledger, POLICY, KNOWN_NOW)],
            "kinds": known_kinds(ledger, POLICY),
            "modes": mode_starts(ledger),
            "evidence": evidence_for(ledger, "proxy.block", Mode.LOGGED, KNOWN_NOW).model_dump(mode="json"),
            "review": pending(ledger, KNOWN_NOW, KNOWN_T0 + timedelta(days=15)).model_dump(mode="json"),
            "expired": expired_changes(ledger, datetime(2030, 1, 1, tzinfo=UTC), timedelta(0)),
            "latest": [(r.change_id, reverted) for r, reverted in latest_changes(ledger, 50)],
            "exfil": ledger.query("EXFIL_HISTORY", (KNOWN_T0.isoformat(), "mramirez")),
        }

    expected = view(sqlite)
    assert expected["review"]["changes"] and expected["latest"] and expected["exfil"]
    assert view(postgres) == expected
