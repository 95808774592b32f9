"""Hostile targets: every known way around the IP and domain guardrails now fails, at the
gate (the pure guardrails the step gate runs) and in the intel sync (the per-feed filter)."""

from __future__ import annotations

import pytest

from handrail.gate import canon, guardrails
from handrail.gate.models import Change, GuardrailContext, Outcome
from handrail.intel.guardrails import apply_guardrails, check_set_members
from handrail.intel.normalize import normalize_domain, parse_feed

pytestmark = pytest.mark.unit

PROTECTED = [("SaaS CRM", "161.71.0.0/16"), ("Largest customer", "146.75.0.0/16")]
IP_RAILS = ({"type": "never_block"}, {"type": "no_reserved_space"})

# The CRM (161.71.0.0/16 = a147:0000/16) and the customer (146.75.0.0/16 = 924b:0000/16),
# written as IPv6 that carries them.
EMBEDDED_PROTECTED = [
    "::ffff:161.71.5.5",                      # IPv4-mapped
    "::ffff:a147:505",                        # the same, in hex
    "::ffff:161.71.0.0/112",                  # mapped network
    "::161.71.5.5",                           # IPv4-compatible (deprecated)
    "64:ff9b::a147:0/112",                    # the CRM through NAT64
    "64:ff9b::146.75.1.2",                    # the customer through NAT64
    "64:ff9b:1::a147:505",                    # local-use NAT64, /96 layout
    "64:ff9b:1:a147:5:500::",                 # local-use NAT64, /48 layout
    "2002:a147:505::/48",                     # 6to4 of a CRM address
    "2002:924b::/32",                         # 6to4 of the whole customer network
    "2001:0:4136:e378:8000:63bf:5eb8:fafa",   # Teredo, client 161.71.5.5 (inverted)
    "2001:0:a147:505::1",                     # Teredo, server 161.71.5.5
]
# Networks that embed all of IPv4: they overlap every protected network and private space.
ALL_OF_IPV4 = ["::ffff:0:0/96", "64:ff9b::/96", "2002::/16", "::/0", "2000::/3"]


def ctx(*rails: dict, **kw) -> GuardrailContext:
    return GuardrailContext(protected=PROTECTED, guardrails=list(rails), **kw)


def gate(target: str, *rails: dict, kind: str = "firewall.egress_block", **kw):
    verdicts = guardrails.evaluate(Change(kind=kind, target=target), ctx(*(rails or IP_RAILS), **kw))
    return guardrails.overall(verdicts), verdicts


@pytest.mark.parametrize("target", EMBEDDED_PROTECTED + ALL_OF_IPV4)
def test_embedded_ipv4_forms_of_protected_networks_are_denied_at_the_gate(target):
    outcome, verdicts = gate(target, {"type": "never_block"})
    assert outcome == Outcome.DENY
    assert "protected network" in verdicts[0].reason and verdicts[0].alert


@pytest.mark.parametrize("target", ALL_OF_IPV4 + ["::ffff:10.1.2.3", "64:ff9b::7f00:1", "2002:c0a8:101::/48"])
def test_ipv6_that_embeds_reserved_ipv4_is_reserved(target):
    outcome, verdicts = gate(target, {"type": "no_reserved_space"})
    assert outcome == Outcome.DENY and verdicts[0].guardrail == "no_reserved_space"


@pytest.mark.parametrize("target", ["203.0.113.9", "2606:4700::1", "2002:cb00:7109::/48", "::ffff:8.8.8.8"])
def test_ordinary_targets_still_pass(target):
    assert gate(target)[0] == Outcome.ALLOW


@pytest.mark.parametrize("target", [
    "203.0.113.7\n161.71.0.0/16", "203.0.113.7 161.71.0.0/16", "203.0.113.7,161.71.0.0/16",
    " 203.0.113.7", "203.0.113.7\t", "fe80::1%eth0", "junk", "203.0.113.7\x00", "",
    "161.071.0.1", "1.2.3.4/33",
])
def test_a_target_that_is_not_exactly_one_address_is_denied_with_a_reason(target):
    outcome, verdicts = gate(target)
    assert outcome == Outcome.DENY
    assert "refused rather than guessed" in verdicts[0].reason and "\n" not in verdicts[0].reason


def test_junk_next_to_a_name_is_denied_on_a_kind_that_takes_names():
    assert gate("evil.example\n161.71.0.0/16", kind="proxy.block")[0] == Outcome.DENY
    assert gate("evil.example", kind="proxy.block")[0] == Outcome.ALLOW
    assert gate("http://[::ffff:161.71.5.5]/x", kind="proxy.block")[0] == Outcome.DENY
    for legacy in ("http://2705786117/", "http://0xa1470505/", "http://0241.0107.5.5/", "http://161.71.1285/"):
        assert gate(legacy, kind="proxy.block")[0] == Outcome.DENY, legacy
    assert gate("http://2130706433/", {"type": "no_reserved_space"}, kind="proxy.block")[0] == Outcome.DENY
    assert gate("http://[::1/", kind="proxy.block")[0] == Outcome.DENY
    assert gate("http://8.8.8.8/x", kind="proxy.block")[0] == Outcome.ALLOW


@pytest.mark.parametrize("target", ["ｇｏｏｇｌｅ.com", "google。com", "google.com\u200b", "GOOGLE.com.",
                                    "mail.google\uff0ecom", "goo\u00adgle.com", "google.com\ufeff"])
def test_unicode_forms_of_an_allowlisted_domain_are_denied(target):
    outcome, verdicts = gate(target, {"type": "never_touch", "values": ["google.com"]}, kind="dns.sinkhole")
    assert outcome == Outcome.DENY and "google.com" in verdicts[0].reason


def test_unicode_allowlist_entries_match_their_ascii_form():
    rail = {"type": "never_touch", "values": ["bücher.example"]}
    assert gate("xn--bcher-kva.example", rail, kind="dns.sinkhole")[0] == Outcome.DENY
    assert gate("shop.BÜCHER.example", rail, kind="dns.sinkhole")[0] == Outcome.DENY
    assert gate("buecher.example", rail, kind="dns.sinkhole")[0] == Outcome.ALLOW


# --- batch targets ------------------------------------------------------------------


def members(text: str):
    return parse_feed(text.encode(), feed="f", format="ipset").indicators


def test_a_batch_target_without_a_member_check_is_denied():
    outcome, verdicts = gate("set:" + "a" * 64, kind="firewall.egress_block")
    assert outcome == Outcome.DENY and "were not checked" in verdicts[0].reason


def test_a_batch_target_is_checked_member_by_member():
    sha = "b" * 64
    bad = check_set_members(sha, members("8.8.8.8\n::ffff:161.71.5.5\n2002:924b::/32\n"),
                            {c: n for n, c in PROTECTED})
    outcome, verdicts = gate("set:" + sha, set_check=bad)
    assert outcome == Outcome.DENY and "2 of the 3 members" in verdicts[0].reason
    clean = check_set_members(sha, members("8.8.8.8\n2606:4700::1\n"), {c: n for n, c in PROTECTED})
    assert gate("set:" + sha, set_check=clean)[0] == Outcome.ALLOW
    # a check of another set does not clear this one
    assert gate("set:" + "c" * 64, set_check=clean)[0] == Outcome.DENY


ALLOWLIST = ["salesforce.com", "microsoft.com"]
NAME_RAILS = IP_RAILS + ({"type": "never_touch", "allowlist": "domains"},)
ALLOWLISTED_NAMES = "salesforce.com,domain\nLogin.SalesForce.com.,domain\nhttps://login.microsoft.com/a,url\n"


def names(text: str):
    return parse_feed(("indicator,type\n" + text).encode(), feed="f", format="csv",
                      columns={"indicator": "indicator", "type": "type"}).indicators


def test_a_batch_with_allowlisted_names_is_denied_by_never_touch_with_an_alert():
    sha = "d" * 64
    bad = check_set_members(sha, names(ALLOWLISTED_NAMES + "evil.example.org,domain\n"), {}, allowlist=ALLOWLIST)
    assert bad.protected_hits == [] and len(bad.allowlist_hits) == 3
    outcome, verdicts = gate("set:" + sha, *NAME_RAILS, kind="proxy.block", set_check=bad, allowlist=ALLOWLIST)
    assert outcome == Outcome.DENY and [v.guardrail for v in verdicts] == ["never_touch"]
    assert "3 of the 4 members" in verdicts[0].reason and "login.microsoft.com" in verdicts[0].reason
    assert verdicts[0].alert
    clean = check_set_members(sha, names("evil.example.org,domain\nhttps://salesforce.com.evil.example/,url\n"),
                              {}, allowlist=ALLOWLIST)
    assert gate("set:" + sha, *NAME_RAILS, kind="proxy.block", set_check=clean, allowlist=ALLOWLIST)[0] \
        == Outcome.ALLOW


def test_a_batch_is_not_cleared_for_never_touch_without_a_member_check():
    outcome, verdicts = gate("set:" + "e" * 64, {"type": "never_touch", "allowlist": "domains"},
                             kind="proxy.block", allowlist=ALLOWLIST)
    assert outcome == Outcome.DENY and "were not checked" in verdicts[0].reason


# --- the intel sync -----------------------------------------------------------------


def test_intel_sync_drops_allowlisted_names_and_flags_the_feed_like_protected_addresses():
    s = names(ALLOWLISTED_NAMES + "evil.example.org,domain\n161.71.5.5,ip\n")
    kept, report = apply_guardrails("shady", s, {"161.71.0.0/16": "CRM"}, allowlist=ALLOWLIST)
    assert kept.as_text() == ["evil.example.org"]
    assert report.faulty and report.dropped == 4
    assert {h.entry: h.reason for h in report.protected_hits} == {
        "161.71.5.5": "overlaps protected network 161.71.0.0/16 (CRM)",
        "salesforce.com": "on the allowlist (salesforce.com)",
        "login.salesforce.com": "on the allowlist (salesforce.com)",
        "https://login.microsoft.com/a": "on the allowlist (microsoft.com)"}
    assert report.alert.startswith("feed shady looks faulty: 4 entries overlap protected networks or are on the "
                                   "allowlist: ")
    _, none = apply_guardrails("f", s, {})  # without an allowlist, names pass as before
    assert none.dropped == 0 and not none.faulty


@pytest.mark.parametrize("entry", EMBEDDED_PROTECTED + ALL_OF_IPV4)
def test_embedded_forms_are_dropped_by_the_intel_sync(entry):
    s = members(entry + "\n8.8.8.8\n")
    assert len(s) == 2
    kept, report = apply_guardrails("f", s, {c: n for n, c in PROTECTED})
    assert kept.as_text() == ["8.8.8.8"]
    assert report.dropped == 1


def test_intel_sync_names_the_embedding_and_flags_the_feed():
    kept, report = apply_guardrails("shady", members("2002:a147:505::/48\n8.8.8.8\n"),
                                    {"161.71.0.0/16": "CRM"})
    assert report.faulty and report.protected_hits[0].entry == "2002:a147:505::/48"
    assert "as 6to4" in report.protected_hits[0].reason


@pytest.mark.parametrize("text", ["ｇｏｏｇｌｅ.com", "google。com", "google.com\u200b", "GOOGLE.COM."])
def test_intel_domains_are_stored_in_the_gates_canonical_form(text):
    assert normalize_domain(text) == "google.com"


# --- the canonical model itself -----------------------------------------------------


def test_ipv4_views_read_each_embedding():
    import ipaddress

    def view(text):
        return [(label, str(ipaddress.IPv4Address(s))) for label, (s, e) in canon.v4_intervals(
            ipaddress.ip_network(text)) if s == e]

    assert ("IPv4-mapped", "161.71.5.5") in view("::ffff:161.71.5.5")
    assert ("NAT64", "161.71.5.5") in view("64:ff9b::a147:505")
    assert ("6to4", "161.71.5.5") in view("2002:a147:505::1")
    assert ("Teredo client", "161.71.5.5") in view("2001:0:4136:e378:8000:63bf:5eb8:fafa")
    assert canon.v4_intervals(ipaddress.ip_network("2606:4700::1")) == []


@pytest.mark.parametrize("target", [
    "salesforce.com", "LOGIN.salesforce.com.", "ｓａｌｅｓｆｏｒｃｅ。com", "salesforce.com\u200b", "notsalesforce.com",
    "salesforce.com.evil.example", "https://corp.example@evil.example/", "https://evil.example@corp.example/",
    "http://bücher.de/x", "xn--bcher-kva.de", "sub.bücher.de", "com",
])
def test_the_set_check_reads_names_as_never_touch_does(target):
    listed = ["salesforce.com", "corp.example", "Bücher.de."]
    # the single-target guardrail judges the host as a name; it also refuses a URL not spelt
    # canonically and a name covering a listed one (`com`), which a feed's members never are
    host = canon.target_name(target)
    single = guardrails.never_touch(Change(kind="proxy.block", target=host), {"values": listed}, GuardrailContext())
    entry = canon.listed_entry(target, canon.canonical_names(listed))
    assert (entry is not None) == (single is not None and "is on the allowlist (" in single.reason)
    assert entry is None or canon.domain_within(canon.target_name(target), entry)


# --- one URL normaliser ---------------------------------------------------------------


@pytest.mark.parametrize("url, canonical", [
    ("HTTP://Evil.Example.COM:80/Path?q=1", "http://evil.example.com/Path?q=1"),
    ("https://[2001:DB8::1]:8443", "https://[2001:db8::1]:8443/"),
    ("http://x4z9arb.cn/4712/%7e", "http://x4z9arb.cn/4712/%7E"),
    ("http://bücher.de/ü", "http://xn--bcher-kva.de/%C3%BC"),
    ("http://ｇｏｏｇｌｅ。com/x", "http://google.com/x"),
    ("https://evil.com:8443/a[1]?b=[2]", "https://evil.com:8443/a[1]?b=[2]"),
])
def test_feeds_and_mail_share_one_url_normaliser(url, canonical):
    from handrail.intel.normalize import normalize_url
    from handrail.runbooks.phishing.indicators import normalise_url

    assert normalize_url(url) == canonical == normalise_url(url)


def test_the_fragment_is_evidence_in_mail_and_dropped_for_blocking():
    from handrail.intel.normalize import normalize_url
    from handrail.runbooks.phishing.indicators import normalise_url

    assert normalise_url("https://a.example.com/x#frag") == "https://a.example.com/x#frag"
    assert normalize_url("https://a.example.com/x#frag") == "https://a.example.com/x"


@pytest.mark.parametrize("text", ["see http://evil\u3002example/login", "see http://evil.example\u200b/login",
                                  "see http://ｅｖｉｌ.example/login"])
def test_unicode_dots_and_zero_width_in_mail_links_do_not_hide_the_host(text):
    from handrail.runbooks.phishing.indicators import find_urls

    assert find_urls(text)[0] == ["http://evil.example/login"]


@pytest.mark.parametrize("text, url", [
    ("see http://0xcb.0x00.0x71.0x09/login now", "http://203.0.113.9/login"),
    ("see http://3405803785/x now", "http://203.0.113.9/x"),
    ("see http://0241.0107.5.5/ now", "http://161.71.5.5/"),  # the CRM: the egress block is then denied
    ("see http://203.0.113.9./a now", "http://203.0.113.9/a"),
])
def test_a_mail_link_to_a_legacy_ipv4_spelling_is_the_address_a_browser_reaches(text, url):
    """A browser connects to 203.0.113.9 for http://3405803785/: the link must reach the verdict
    (a held egress block, the never-block guardrails), not vanish from the parse."""
    from handrail.runbooks.phishing.indicators import find_urls

    assert find_urls(text)[0] == [url]


def test_a_mail_link_host_that_is_no_address_and_no_name_still_vanishes():
    from handrail.runbooks.phishing.indicators import find_urls

    assert find_urls("see http://example/x and http://0xzz.1.2.3/ now")[0] == []
