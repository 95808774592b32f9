"""Policy parsing and the pure guardrail functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from handrail.gate import guardrails
from handrail.gate.models import Change, GuardrailContext, Mode, Outcome
from handrail.gate.policy import PolicyError, load_policy, parse_duration, parse_policy
from handrail.gate.preflight import static_refusals, target_suffix

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).resolve().parents[1] / "policy.toml"
PROTECTED = [("SaaS CRM", "161.71.0.0/16"), ("Largest customer", "146.75.0.0/16")]


def block(target: str, kind: str = "firewall.egress_block") -> Change:
    return Change(kind=kind, target=target)


def ctx(*rails: dict, **kw) -> GuardrailContext:
    return GuardrailContext(protected=PROTECTED, guardrails=list(rails), **kw)


def test_shipped_policy_is_valid_and_matches_the_contract():
    policy = load_policy(SHIPPED)
    assert {"alice", "bob", "carol", "dave"} <= set(policy.users)
    assert policy.users["alice"].roles == ["soc-analyst"] and policy.users["dave"].roles == []
    assert policy.users["carol"].roles == ["soc-lead"]
    assert ("SaaS CRM", "161.71.0.0/16") in policy.protected()
    gate = policy.gate_policy("firewall.egress_block")
    assert gate.mode == Mode.APPROVE and gate.required_approvals == 1
    assert gate.approvers.roles == ["soc-analyst"]
    assert policy.gate_policy("edr.isolate").pinned


def test_unknown_kind_falls_back_to_the_safe_default():
    gate = load_policy(SHIPPED).gate_policy("something.new")
    assert gate.mode == Mode.APPROVE and gate.on_timeout == "deny"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[users\nalice = 1", "not valid TOML"),
        ('[actions."x"]\nmode = "yolo"', "actions.x.mode"),
        ('[actions."x"]\nmode = "logged"\npinned = true', "pinned action kind must stay"),
        ('[actions."x"]\nguardrails = [{ type = "magic" }]', "unknown guardrail type 'magic'"),
        ('[actions."x"]\napprovers = { users = ["zed"] }', "unknown user 'zed'"),
        ('[users]\na = { roles = ["r"] }\n[actions."x"]\nrequired_approvals = 2\napprovers = { roles = ["r"] }',
         "needs 2 approvals but only 1"),
        ('[actions."x"]\napproval_timeout = "soon"', "not a duration"),
        ('[[protected_networks]]\nname = "x"\ncidr = "10.0.0.1/8"', "not a network"),
        ("surprise = 1", "surprise"),
        # an option the guardrail does not read, or of the wrong type, would switch it off silently
        ('[actions."x"]\nguardrails = [{ type = "rate_limit", per_hr = 10 }]', "has no option 'per_hr'"),
        ('[actions."x"]\nguardrails = [{ type = "per_run_limit", per_run = nan }]', "must be a number of zero or more"),
        ('[actions."x"]\nguardrails = [{ type = "per_run_limit", per_run = "x" }]', "must be a number of zero or more"),
        ('[actions."x"]\nguardrails = [{ type = "max_batch", max = true }]', "must be a number of zero or more"),
        ('[actions."x"]\nguardrails = [{ type = "confidence", at_least = "certain" }]', "must be one of"),
        ('[actions."x"]\nguardrails = [{ type = "never_touch", values = "corp.example" }]', "list of strings"),
        ('[defaults]\napproval_timeout = "-4h"', "not a duration"),
        ('[defaults]\nescalation_timeout = "99999999999w"', "longer than ten years"),
        ('[actions."x"]\ntool_retry = nan', "not a finite number"),
        ("x = " + "[" * 5000 + "]" * 5000, "nests arrays or tables too deeply"),
        ("x = " + "9" * 5000, "cannot be read"),
    ],
)
def test_bad_policies_get_one_clear_sentence(text, fragment):
    with pytest.raises(PolicyError) as err:
        parse_policy(text, source="p.toml")
    message = str(err.value)
    assert fragment in message and message.startswith("p.toml") and "\n" not in message


def test_every_guardrail_declares_the_options_it_reads():
    from handrail.gate.policy import GUARDRAIL_OPTIONS, GUARDRAIL_TYPES

    assert set(GUARDRAIL_OPTIONS) == GUARDRAIL_TYPES == set(guardrails.GUARDRAILS)
    load_policy(SHIPPED)  # the shipped policy uses only declared options


def test_missing_policy_file(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "nope.toml")


def test_durations():
    assert parse_duration("90s") == 90 and parse_duration("4h") == 14400 and parse_duration("30d") == 2592000
    assert parse_duration(5) == 5
    with pytest.raises(ValueError):
        parse_duration("4 hours")


@pytest.mark.parametrize(
    "target, outcome, words",
    [
        ("161.71.4.20", Outcome.DENY, "is inside the protected network SaaS CRM"),
        ("161.71.0.0/16", Outcome.DENY, "is inside"),
        ("161.0.0.0/8", Outcome.DENY, "overlaps the protected network SaaS CRM"),
        ("146.75.200.0/24", Outcome.DENY, "Largest customer"),
        ("203.0.113.9", Outcome.ALLOW, ""),
        ("2001:db8::1", Outcome.ALLOW, ""),
    ],
)
def test_never_block(target, outcome, words):
    verdicts = guardrails.evaluate(block(target), ctx({"type": "never_block"}))
    assert guardrails.overall(verdicts) == outcome
    if words:
        assert words in verdicts[0].reason and verdicts[0].alert


@pytest.mark.parametrize("target", ["10.1.2.3", "192.168.0.0/16", "127.0.0.1", "169.254.1.1", "224.0.0.5", "::1"])
def test_reserved_space_is_never_blocked(target):
    verdicts = guardrails.evaluate(block(target), ctx({"type": "no_reserved_space"}))
    assert guardrails.overall(verdicts) == Outcome.DENY


def test_never_touch_covers_subdomains_but_not_lookalikes():
    rails = ctx({"type": "never_touch"}, allowlist=["corp.example"])
    assert guardrails.overall(guardrails.evaluate(block("mail.corp.example", "dns.sinkhole"), rails)) == Outcome.DENY
    assert (guardrails.overall(guardrails.evaluate(block("corp.example.evil.com", "dns.sinkhole"), rails))
            == Outcome.ALLOW)
    assert guardrails.overall(guardrails.evaluate(block("evilcorp.example", "dns.sinkhole"), rails)) == Outcome.ALLOW


def test_a_check_that_recorded_no_verdicts_is_judged_as_its_release_read_targets():
    """A check before 22098cd recorded no verdicts: the workflow judges it on every replay
    (tests/test_replay_in_flight.py), as before 11298c5 unless its context reads in one spelling."""
    covering = block("parcel-fees.example", "dns.sinkhole")
    rail = {"type": "never_touch", "values": ["track.parcel-fees.example"]}
    assert [v.guardrail for v in guardrails.evaluate(covering, ctx(rail))] == ["never_touch"]  # today
    assert guardrails.evaluate_unrecorded(covering, ctx(rail)) == []  # 3ae8ef3: a covering name was not touched
    assert guardrails.evaluate_unrecorded(block("mail.track.parcel-fees.example", "dns.sinkhole"), ctx(rail))
    since_suffixes = GuardrailContext.model_validate({"guardrails": [rail], "target_suffix": None})  # c4dbfd2 on
    one_spelling = ctx({"type": "canonical_target"}, rail)  # the shipped policy from 11298c5 on
    for context in (since_suffixes, one_spelling):
        assert [v.guardrail for v in guardrails.evaluate_unrecorded(covering, context)] == ["never_touch"]
    # the CRM's address in a spelling urlsplit did not read as one: passed then (as it ran), refused now
    odd = block("http://0xa1.0x47.5.5./x", "proxy.block")
    assert guardrails.evaluate_unrecorded(odd, ctx({"type": "never_block"})) == []
    [now] = guardrails.evaluate(odd, ctx({"type": "never_block"}))
    assert now.outcome == Outcome.DENY and "canonical spelling" in now.reason


def test_never_touch_judges_a_page_by_its_host():
    rails = ctx({"type": "never_touch"}, allowlist=["corp.example"])

    def page(url: str) -> Outcome:
        return guardrails.overall(guardrails.evaluate(block(url, "proxy.block"), rails))

    assert page("https://intranet.corp.example/login?next=/") == Outcome.DENY
    assert page("https://CORP.example./x") == Outcome.DENY
    # userinfo is not the host, but a URL carrying one is not a page anyone needs to block: refused
    assert page("https://corp.example@evil.example/x") == Outcome.DENY
    assert page("https://evil.example/corp.example/x") == Outcome.ALLOW
    assert page("https://evil.example/x?u=https://corp.example/") == Outcome.ALLOW


def test_rate_limit_holds_and_names_its_threshold():
    rail = {"type": "rate_limit", "per_hour": 5, "outcome": "hold"}
    assert guardrails.evaluate(block("203.0.113.1"), ctx(rail, recent_count_hour=4)) == []
    [verdict] = guardrails.evaluate(block("203.0.113.1"), ctx(rail, recent_count_hour=5))
    assert verdict.outcome == Outcome.HOLD and verdict.threshold == 5 and verdict.threshold_source == "static"
    derived = ctx(rail, recent_count_hour=5, thresholds={"rate_limit": 12},
                  threshold_sources={"rate_limit": "baseline p99x1.5"})
    assert guardrails.evaluate(block("203.0.113.1"), derived) == []


def test_per_run_limit_and_protected_tags():
    per_run = {"type": "per_run_limit", "per_run": 2}
    assert (guardrails.overall(guardrails.evaluate(block("x.com", "dns.sinkhole"), ctx(per_run, recent_count_run=2)))
            == Outcome.HOLD)
    tags = {"type": "protected_tags", "tags": ["production", "executive"]}
    [v] = guardrails.evaluate(block("db-01", "edr.isolate"), ctx(tags, target_tags=["production", "linux"]))
    assert v.outcome == Outcome.HOLD and "production" in v.reason


def test_deny_beats_hold():
    rails = ctx({"type": "never_block"}, {"type": "rate_limit", "per_hour": 0})
    assert guardrails.overall(guardrails.evaluate(block("161.71.1.1"), rails)) == Outcome.DENY


def _shipped_verdicts(kind: str, target: str) -> list:
    policy = load_policy(SHIPPED)
    rails = [g for g in policy.guardrails_for(kind)
             if g["type"] in ("never_block", "no_reserved_space", "never_touch", "canonical_target")]
    allowlist = [d for g in rails if g.get("allowlist") for d in policy.allowlists[g["allowlist"]]]
    return guardrails.evaluate(Change(kind=kind, target=target),
                               GuardrailContext(protected=policy.protected(), allowlist=allowlist, guardrails=rails))


# Spellings a browser, a proxy or a resolver reads as the protected CRM (161.71.0.0/16) or as an
# allowlisted name, that Python's urlsplit reads otherwise or the guardrails used to compare as text.
CRM_SPELLINGS = ["http://161.71.5.5./", "http://0xa1.0x47.5.5./", "http://%31%36%31.71.5.5/", "http://161。71。5。5/",
                 "0xa1470505", "161.71.0x5.5", "http:161.71.5.5", "http:/161.71.5.5/", "http:\\\\161.71.5.5\\",
                 "http://161.71.5.5%2F@x.example/", "http://[::ffff:161.71.5.5%25eth0]/"]
ALLOWLISTED_SPELLINGS = ["https://sales%66orce.com/", "https://salesforce%2ecom/", "salesforce.com:443",
                         "https://salesforce.com\\@x.example/", "http:salesforce.com", "http:/salesforce.com/",
                         "https:////salesforce.com/", "salesforce.com/", "salesforce.com/path", "*.com", "com",
                         "example", "salesforce.com\\."]


@pytest.mark.parametrize("target", CRM_SPELLINGS + ALLOWLISTED_SPELLINGS)
@pytest.mark.parametrize("kind", ["proxy.block", "dns.sinkhole"])
def test_a_target_spelt_any_way_but_one_is_denied(kind, target):
    verdicts = _shipped_verdicts(kind, target)
    assert guardrails.overall(verdicts) == Outcome.DENY, (kind, target)


@pytest.mark.parametrize("kind", ["proxy.block", "dns.sinkhole"])
def test_a_name_that_covers_an_allowlisted_one_is_denied(kind):
    [verdict] = [v for v in _shipped_verdicts(kind, "corp.example") if v.guardrail == "never_touch"]
    assert "on the allowlist" in verdict.reason
    [verdict] = [v for v in _shipped_verdicts(kind, "example") if v.guardrail == "never_touch"]
    assert verdict.reason.startswith("example covers ")
    assert verdict.reason.endswith(".example, which is on the allowlist")


@pytest.mark.parametrize("target", ["evil-login.example", "xn--bcher-kva.example", "_dmarc.evil.example",
                                    "https://storage.googleapis.com/bucket/a.html?x=1", "http://203.0.113.9/x",
                                    "https://evil.example:8443/a%20b", "http://[2001:db8::1]/"])
def test_canonical_names_and_pages_pass_the_spelling_check(target):
    assert _shipped_verdicts("proxy.block", target) == []


def test_a_refused_spelling_names_the_canonical_one_when_it_is_safe_to():
    [verdict] = [v for v in _shipped_verdicts("proxy.block", "HTTPS://Evil.Example:443/x#top")
                 if v.guardrail == "canonical_target"]
    assert "write it as 'https://evil.example/x'" in verdict.reason
    [verdict] = _shipped_verdicts("dns.sinkhole", "ＥＶＩＬ.example.")
    assert "write it as 'evil.example'" in verdict.reason
    # a backslash is read differently by different readers: no spelling is suggested
    reasons = " ".join(v.reason for v in _shipped_verdicts("proxy.block", "https://evil.example\\@x.example/"))
    assert "write it as" not in reasons


@pytest.mark.parametrize("kind", ["proxy.block", "dns.sinkhole"])
@pytest.mark.parametrize("target", ["co.uk", "com.au", "github.io", "s3.amazonaws.com", "nakahara.kawasaki.jp"])
def test_a_public_suffix_names_no_one_site_and_is_denied(kind, target):
    refusals = static_refusals(load_policy(SHIPPED), [Change(kind=kind, target=target)])
    assert any(r.startswith("guardrail canonical_target denies") and "public suffix" in r for r in refusals), refusals


@pytest.mark.parametrize("target", ["bbc.co.uk", "someone.github.io", "ec2-198-51-100-7.compute-1.amazonaws.com",
                                    "city.kawasaki.jp", "https://github.io/login"])
def test_one_site_under_a_public_suffix_is_not_refused_as_one(target):
    # a platform's wildcard names one tenant's host, and a URL blocks one page, not a suffix
    refusals = static_refusals(load_policy(SHIPPED), [Change(kind="proxy.block", target=target)])
    assert not any("public suffix" in r for r in refusals), refusals


def test_the_check_gathers_the_suffix_fact_only_where_a_guardrail_reads_it():
    assert target_suffix("co.uk", [{"type": "canonical_target"}]) == "icann"
    assert target_suffix("co.uk", [{"type": "never_touch"}]) is None  # the list is not even loaded
    assert target_suffix("set:" + "a" * 64, [{"type": "canonical_target"}]) is None
