"""The baseline from a synthetic ledger of known shape: exact figures, derived thresholds, HTML."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handrail.gate import guardrails
from handrail.gate.ledger import Ledger
from handrail.gate.models import Change, GuardrailContext, Outcome
from handrail.gate.policy import PolicyError, parse_policy
from handrail.trust.baseline import ThresholdCache, compute_baseline, derive_thresholds, distribution
from handrail.trust.report import render
from handrail.trust.synth import KNOWN_NOW, KNOWN_T0, SyntheticLedger, build_known_ledger
from starter.trust_cmd import build_report, write_html

pytestmark = pytest.mark.unit

POLICY = """
[users]
alice = { roles = ["soc-analyst"] }
bob = { roles = ["soc-analyst"] }

[actions."dns.sinkhole"]
mode = "logged"
guardrails = [
  { type = "rate_limit", per_hour = 500, outcome = "hold", \
baseline = { stat = "p99_hourly", factor = 1.5, floor = 2, min_days = 14 } },
  { type = "per_run_limit", per_run = 20, baseline = { stat = "p99_per_run", factor = 2, min_days = 14 } },
]

[actions."firewall.egress_block"]
mode = "approve"
guardrails = [{ type = "rate_limit", per_hour = 500, outcome = "hold" }]
"""


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    ledger = Ledger(tmp_path_factory.mktemp("known") / "ledger.db")
    build_known_ledger(ledger)
    yield ledger
    ledger.close()


def test_nearest_rank_percentiles():
    stats = distribution({1: 84, 3: 251, 30: 1}, zeros=168)
    assert (stats.observations, stats.p50, stats.p95, stats.p99, stats.max) == (504, 1, 3, 3, 30)
    assert distribution({}) .observations == 0
    assert distribution({5: 1}).p99 == 5


def test_synthetic_ledger_is_a_valid_chain(known):
    assert known.verify().ok


def test_exact_figures_for_the_known_shape(known):
    baseline = compute_baseline(known, KNOWN_NOW)
    assert [k.kind for k in baseline.kinds] == [
        "dns.sinkhole", "edr.isolate", "firewall.egress_block", "nac.disconnect", "nac.reconnect", "proxy.block",
        "training.enroll",
    ]
    dns = baseline.for_kind("dns.sinkhole")
    assert (dns.hours, dns.days, dns.changes, dns.automated) == (504, 21, 867, 867)
    assert dns.window_start == KNOWN_T0
    assert dns.hourly.mean == pytest.approx(867 / 504)
    assert (dns.hourly.p95, dns.hourly.p99, dns.hourly.max) == (3, 3, 30)
    assert dns.daily.mean == pytest.approx(867 / 21)
    assert (dns.daily.p95, dns.daily.p99, dns.daily.max) == (40, 67, 67)
    assert (dns.per_run.observations, dns.per_run.p95, dns.per_run.max) == (336, 3, 30)
    assert dns.per_run.mean == pytest.approx(867 / 336)
    assert (dns.guardrails.evaluated, dns.guardrails.denied, dns.guardrails.held) == (870, 3, 0)
    assert dns.guardrails.by_guardrail == {"never_touch": {"deny": 3}}
    assert (dns.expiries, dns.rollbacks, dns.overrides) == (40, 0, 0)
    assert len(dns.series) == 504 and sum(dns.series) == 867 and dns.series[10 * 24 + 12] == 30

    fw = baseline.for_kind("firewall.egress_block")
    assert (fw.changes, fw.automated, fw.by_mode) == (168, 0, {"approve": 168})
    assert (fw.hourly.mean, fw.hourly.p99, fw.daily.p50, fw.daily.max) == (pytest.approx(1 / 3), 1, 8, 8)
    a = fw.approvals
    assert (a.requested, a.approved, a.denied, a.timeouts) == (171, 168, 2, 1)
    assert (a.latency_s.observations, a.latency_s.p50, a.latency_s.p95, a.latency_s.p99, a.latency_s.max) == (
        170, 600, 600, 1200, 1200)
    assert a.latency_s.mean == pytest.approx((168 * 600 + 2 * 1200) / 170)

    proxy = baseline.for_kind("proxy.block")
    assert (proxy.changes, proxy.rollbacks, proxy.overrides, proxy.per_run.max) == (84, 1, 1, 2)
    nac = baseline.for_kind("nac.disconnect")  # 2 rollbacks + 1 reversal by a human-approved inverse
    assert (nac.changes, nac.rollbacks, nac.overrides, nac.days) == (40, 2, 3, 20)
    train = baseline.for_kind("training.enroll")
    assert (train.days, train.hourly.p99, train.daily.mean) == (5, 20, 20)


def test_since_and_kind_filters(known):
    since = KNOWN_T0 + timedelta(days=14)
    dns = compute_baseline(known, KNOWN_NOW, since=since, kinds=["dns.sinkhole"]).kinds
    assert [k.kind for k in dns] == ["dns.sinkhole"]
    assert (dns[0].days, dns[0].changes, dns[0].daily.max, dns[0].expiries) == (7, 280, 40, 0)


def test_derived_threshold_is_the_baseline_and_a_guardrail_holds_at_it(known):
    policy = parse_policy(POLICY)
    rails = policy.guardrails_for("dns.sinkhole")
    thresholds, sources = derive_thresholds(known, "dns.sinkhole", rails, KNOWN_NOW)
    assert thresholds == {"rate_limit": 4.0, "per_run_limit": 6.0}
    assert sources["rate_limit"] == (
        "baseline: p99 of hourly changes (3) × 1.5 = 4.5, rounded down to 4 over 20.67 days")  # first at 08:00
    assert sources["per_run_limit"] == "baseline: p99 of changes per run (3) × 2 = 6 over 20.67 days"

    change = Change(kind="dns.sinkhole", target="evil.example")
    ctx = GuardrailContext(guardrails=rails, thresholds=thresholds, threshold_sources=sources,
                           recent_count_hour=3, recent_count_run=0)
    assert guardrails.overall(guardrails.evaluate(change, ctx)) == Outcome.ALLOW  # the 4th is within 4
    ctx.recent_count_hour = 4
    [verdict] = guardrails.evaluate(change, ctx)
    assert verdict.outcome == Outcome.HOLD and verdict.guardrail == "rate_limit"
    assert verdict.threshold == 4 and verdict.threshold_source == sources["rate_limit"]


def test_static_fallback_until_enough_history_and_the_floor(known):
    rail = {"type": "rate_limit", "per_hour": 500, "baseline": {"stat": "p99_hourly", "factor": 1.5, "min_days": 30}}
    thresholds, sources = derive_thresholds(known, "dns.sinkhole", [rail], KNOWN_NOW)
    assert thresholds == {"rate_limit": 500.0}
    assert sources == {"rate_limit": "static: not enough history (20.67 of 30 days)"}  # the first came at 08:00
    early = derive_thresholds(known, "dns.sinkhole", [rail], KNOWN_T0 + timedelta(days=3, hours=8))
    assert early[1]["rate_limit"] == "static: not enough history (3 of 30 days)"
    nothing = derive_thresholds(known, "never.seen", [rail], KNOWN_NOW)
    assert nothing == ({"rate_limit": 500.0}, {"rate_limit": "static: not enough history (0 of 30 days)"})
    floor = {"type": "rate_limit", "baseline": {"stat": "p99_hourly", "floor": 20, "min_days": 14}}
    assert derive_thresholds(known, "dns.sinkhole", [floor], KNOWN_NOW)[1]["rate_limit"] == (
        "baseline: p99 of hourly changes (3) × 1 = 3, raised to the floor of 20 over 20.67 days")
    assert derive_thresholds(known, "dns.sinkhole", [{"type": "never_block"}], KNOWN_NOW) == ({}, {})


def test_history_is_counted_from_the_first_change_not_from_its_midnight(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    now = KNOWN_T0 + timedelta(hours=21, minutes=27)
    with SyntheticLedger(ledger) as syn:  # the very first change, 20 minutes ago
        syn.change("dns.sinkhole", now - timedelta(minutes=20), run_id="first", step_id="s01")
    rail = {"type": "rate_limit", "per_hour": 500, "baseline": {"stat": "p99_hourly", "min_days": 14}}
    try:
        assert derive_thresholds(ledger, "dns.sinkhole", [rail], now)[1] == {
            "rate_limit": "static: not enough history (0.01 of 14 days)"}  # not 0.89: midnight is no history
        figures = compute_baseline(ledger, now).for_kind("dns.sinkhole")
        assert figures.window_start == KNOWN_T0 and figures.days == 1  # daily figures still count whole days
    finally:
        ledger.close()


def test_threshold_cache_reuses_within_its_ttl(known):
    rails = parse_policy(POLICY).guardrails_for("dns.sinkhole")
    cache = ThresholdCache(known, ttl_s=60)
    first = cache.derive("dns.sinkhole", rails, KNOWN_NOW)
    assert cache.derive("dns.sinkhole", rails, KNOWN_NOW + timedelta(seconds=30)) == first
    assert cache.derive("dns.sinkhole", [{"type": "rate_limit", "per_hour": 5}], KNOWN_NOW) == ({}, {})


@pytest.mark.parametrize(
    "rail, fragment",
    [
        ('{ type = "rate_limit", baseline = { stat = "p99_daily" } }', "does not fit 'rate_limit'"),
        ('{ type = "never_block", baseline = { stat = "p99_hourly" } }', "no threshold a baseline could set"),
        ('{ type = "rate_limit", baseline = { stat = "p99_hourly", factr = 2 } }', "baseline.factr"),
        ('{ type = "per_run_limit", baseline = { stat = "p99_hourly" } }', "does not fit 'per_run_limit'"),
    ],
)
def test_bad_baseline_rules_are_one_sentence(rail, fragment):
    text = f'[users]\na = {{ roles = ["soc-analyst"] }}\n[actions."x"]\nguardrails = [{rail}]\n'
    with pytest.raises(PolicyError) as err:
        parse_policy(text, source="p.toml")
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_html_report_has_a_chart_per_kind_with_the_threshold_line(known, tmp_path):
    policy = parse_policy(POLICY)
    figures, extra = build_report(known, policy, KNOWN_NOW, None, None)
    assert extra["dns.sinkhole"]["thresholds"][0]["value"] == 4.0
    path = tmp_path / "report" / "baseline.html"
    write_html(path, figures, extra)
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == len(figures.kinds) == 7
    assert page.count('<line class="threshold"') == 1  # dns.sinkhole's derived rate limit
    assert page.count('<line class="static"') == 1  # firewall.egress_block's static 500/h
    assert "rate_limit 4/h (derived)" in page and "p99 of hourly changes (3)" in page
    for external in ("<script", "<link", "src=", "@import", "url("):
        assert external not in page
    assert "<rect class=\"bar\"" in page and "dns.sinkhole" in page


def test_html_for_an_empty_ledger(tmp_path):
    ledger = Ledger(tmp_path / "empty.db")
    page = render(compute_baseline(ledger, KNOWN_NOW))
    assert "no changes in this period" in page and "<svg" not in page


def test_empty_hours_count_as_zero_and_now_bounds_the_window(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    with SyntheticLedger(ledger) as syn:
        syn.change("k", KNOWN_T0 + timedelta(hours=5), run_id="r", step_id="s")
        syn.change("k", KNOWN_T0 + timedelta(days=3), run_id="late", step_id="s")  # after `now`: not counted
    fig = compute_baseline(ledger, KNOWN_T0 + timedelta(hours=10)).kinds[0]
    assert (fig.hours, fig.days, fig.changes, fig.hourly.max, fig.hourly.p50) == (10, 1, 1, 1, 0)
    assert fig.hourly.mean == pytest.approx(0.1)


def test_the_benchmark_runs_on_a_small_ledger(tmp_path):
    from handrail.trust.synth import bench_baseline

    result = bench_baseline(rows=4000, directory=tmp_path)
    assert result["rows"] > 2000 and result["kinds"] == 9 and result["baseline_s"] >= 0


def test_steady_history_for_end_to_end_tests(tmp_path):
    from handrail.trust.synth import steady_history

    ledger = Ledger(tmp_path / "l.db")
    now = KNOWN_NOW + timedelta(minutes=20)
    steady_history(ledger, "firewall.egress_block", now, days=21, per_hour=4, recent=4)
    rail = {"type": "rate_limit", "per_hour": 500, "outcome": "hold",
            "baseline": {"stat": "p99_hourly", "factor": 1.0, "floor": 1, "min_days": 14}}
    thresholds, sources = derive_thresholds(ledger, "firewall.egress_block", [rail], now)
    assert thresholds == {"rate_limit": 4.0}
    assert sources["rate_limit"].startswith("baseline: p99 of hourly changes (4) × 1 = 4 over 21")
    assert ledger.count_changes("firewall.egress_block", now - timedelta(hours=1)) == 4
