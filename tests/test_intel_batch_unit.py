"""Unit tests for the intel sync's pieces: the max_batch guardrail, the settings, the
Suricata rules, set-target dispatch and the age-out clock."""

from __future__ import annotations

import pytest

from handrail.actions import Actions, IntelContext
from handrail.actions.firewall import EgressBlock
from handrail.actions.intel import SetOrSingle, suricata_rule
from handrail.gate import guardrails
from handrail.gate.models import Change, GuardrailContext, Outcome
from handrail.gate.policy import PolicyError, parse_policy
from handrail.intel.config import IntelConfigError, parse_intel_settings
from handrail.intel.sets import IndicatorSet, cidr_interval
from handrail.intel.state import IntelState, difference, entries_text, intersection, union
from handrail.intel.store import IntelStore
from lab.ips import parse_rule

pytestmark = pytest.mark.unit


def batch(count, feeds="feed-a (6000)"):
    return Change(kind="proxy.block", target="set:" + "0" * 64, params={"count": count, "feeds": feeds})


def test_max_batch_holds_a_big_batch_and_names_the_feeds():
    ctx = GuardrailContext(guardrails=[{"type": "max_batch", "max": 5000}])
    assert guardrails.evaluate(batch(5000), ctx) == []
    [v] = guardrails.evaluate(batch(6001), ctx)
    assert v.outcome == Outcome.HOLD and v.guardrail == "max_batch" and v.threshold == 5000
    assert "6001" in v.reason and "feed-a (6000)" in v.reason and v.threshold_source == "static"
    # a single-target change has no count: the guardrail does not speak
    assert guardrails.evaluate(Change(kind="proxy.block", target="1.2.3.4"), ctx) == []
    deny = GuardrailContext(guardrails=[{"type": "max_batch", "max": 10, "outcome": "deny"}])
    assert guardrails.evaluate(batch(11), deny)[0].outcome == Outcome.DENY


def test_policy_accepts_max_batch_and_the_shipped_intel_settings():
    from pathlib import Path

    from handrail.intel.config import intel_settings

    policy = parse_policy((Path(__file__).resolve().parents[1] / "policy.toml").read_text())
    assert any(g["type"] == "max_batch" for g in policy.guardrails_for("proxy.block"))
    cfg = intel_settings(policy)
    assert {f.name for f in cfg.feeds} >= {"lab-c2", "lab-drop", "lab-phish-csv", "lab-stix"}
    assert cfg.grace_s == 7 * 86400
    with pytest.raises(PolicyError, match="unknown guardrail type"):
        parse_policy('[actions."proxy.block"]\nguardrails = [{ type = "max_batches" }]\n')


@pytest.mark.parametrize("raw, message", [
    ({"feeds": [{"name": "a"}, {"name": "a"}]}, "configured twice"),
    ({"feeds": [{"name": "a", "format": "ipset", "columns": {"indicator": "x"}}]}, "only apply to csv"),
    ({"grace": "soon"}, "not a duration"),
    ({"feeds": [{"name": "a", "format": "xml"}]}, "settings.intel.feeds.0.format"),
    ({"threshhold": 2}, "threshhold"),
])
def test_intel_settings_errors_are_one_sentence(raw, message):
    with pytest.raises(IntelConfigError, match=message):
        parse_intel_settings(raw)


@pytest.mark.parametrize("entry", ["1.2.3.4", "5.6.0.0/16", "2001:db8::1", "2400:ab::/48",
                                   "evil.example.com", "http://evil.example.com/a;b\"c/x.bin"])
def test_suricata_rules_parse_on_the_lab_ips(entry):
    rule = suricata_rule(entry, 1_100_000_007, "drop")
    doc = parse_rule(rule)
    assert doc["sid"] == 1_100_000_007 and doc["action"] == "drop"


def test_suricata_rule_kinds():
    assert " dns " in suricata_rule("1-800-flowers.com", 1)
    assert " ip " in suricata_rule("1.2.3.0/24", 1)
    assert suricata_rule("1.2.3.4-1.2.3.9", 1) is None
    assert "http.host" in suricata_rule("https://evil.example:8443/x", 1)


def test_set_targets_go_to_the_batch_action_and_others_to_the_single():
    action = Actions(IntelContext(store=None, state=None)).for_kind("firewall.egress_block")
    assert isinstance(action, SetOrSingle)
    assert action._pick(Change(kind="firewall.egress_block", target="1.2.3.4")).__class__ is EgressBlock
    assert action._pick(Change(kind="firewall.egress_block", target="set:" + "a" * 64)) is action.batch
    inverse = action.batch.inverse(
        Change(kind="firewall.egress_block", target="set:" + "a" * 64, params={"count": 3, "batch": 10}),
        {"set": "a" * 64, "members": 3, "present_sha256": "b" * 64, "present": 1})
    assert inverse.kind == "firewall.egress_unblock" and inverse.target == "set:" + "a" * 64
    assert inverse.params["except"] == "b" * 64 and inverse.params["count"] == 2


def _set(*texts: str) -> IndicatorSet:
    v4, v6, doms = [], [], []
    for t in texts:
        if t[0].isdigit() or ":" in t:
            ver, s, e = cidr_interval(t)
            (v4 if ver == 4 else v6).append((s, e))
        else:
            doms.append(t)
    return IndicatorSet.build([a for a, _ in v4], [b for _, b in v4], v6, doms)


def test_set_algebra_and_fast_text():
    a, b = _set("1.2.3.4", "5.6.0.0/16", "evil.com", "2001:db8::/32"), _set("1.2.3.4", "good.com")
    assert entries_text(union(a, b)) == ["1.2.3.4", "5.6.0.0/16", "2001:db8::/32", "evil.com", "good.com"]
    assert entries_text(difference(a, b)) == ["5.6.0.0/16", "2001:db8::/32", "evil.com"]
    assert entries_text(intersection(a, b)) == ["1.2.3.4"]


def test_age_clock_starts_when_an_entry_leaves_every_feed(tmp_path):
    store = IntelStore(tmp_path / "store")
    state = IntelState(tmp_path / "intel.db", store)
    applied = _set("1.2.3.4", "9.9.9.9", "evil.com")
    state.commit("c1", "proxy.block", store.put_set(applied), +1)
    feed = _set("1.2.3.0/24", "evil.com")  # 1.2.3.4 present through its network
    due, counts = state.age([feed], now=1000.0, grace_s=100)
    assert counts == {"tracked": 3, "absent": 1, "newly_absent": 1, "due": 0}
    due, counts = state.age([feed], now=1050.0, grace_s=100)
    assert counts["newly_absent"] == 0 and len(due) == 0  # the clock was not restarted
    due, counts = state.age([feed], now=1101.0, grace_s=100)
    assert entries_text(due) == ["9.9.9.9"]
    due, counts = state.age([feed, _set("9.9.9.9")], now=1200.0, grace_s=100)
    assert len(due) == 0 and counts["absent"] == 0  # back in a feed: the clock stops
    assert state.commit("c1", "proxy.block", store.put_set(applied), +1) is False  # idempotent
    state.commit("c2", "proxy.block", store.put_set(_set("9.9.9.9")), -1)
    assert entries_text(state.applied("proxy.block")) == ["1.2.3.4", "evil.com"]
    assert state.reconcile(lambda cid: cid == "c2") == 1
    assert entries_text(state.applied("proxy.block")) == ["1.2.3.4", "9.9.9.9", "evil.com"]


def test_ips_sids_are_stable_per_indicator(tmp_path):
    store = IntelStore(tmp_path / "store")
    state = IntelState(tmp_path / "intel.db", store)
    first = state.sids(["1.2.3.4", "evil.com"], 1_100_000_000)
    again = state.sids(["evil.com", "5.5.5.5", "1.2.3.4"], 1_100_000_000)
    assert again[0] == first[1] and again[2] == first[0] and len(set(first + again)) == 3
