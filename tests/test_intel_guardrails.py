"""The never-block guardrails: protected networks, special-use space, volume."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from handrail.intel.guardrails import (
    SPECIAL_V4,
    SPECIAL_V6,
    SPECIAL_V6_COARSE,
    apply_guardrails,
    volume_verdict,
)
from handrail.intel.normalize import parse_feed
from handrail.intel.sets import IndicatorSet

pytestmark = pytest.mark.unit

PROTECTED = {"161.71.0.0/16": "SaaS CRM", "146.75.0.0/16": "largest customer"}


def feed(text: str) -> IndicatorSet:
    return parse_feed(text.encode(), feed="f", format="ipset").indicators


def test_protected_overlap_covering_network_and_address_inside():
    s = feed("161.0.0.0/8\n"          # covers the CRM
             "146.75.12.34\n"         # inside the customer
             "146.75.128.0/17\n"      # network inside the customer
             "161.72.0.0/16\n"        # adjacent, no overlap
             "8.8.8.8\n")
    kept, report = apply_guardrails("shadyfeed", s, PROTECTED)
    assert kept.as_text() == ["8.8.8.8", "161.72.0.0/16"]
    assert report.feed == "shadyfeed" and report.faulty and report.dropped == 3
    assert {(h.entry, h.reason) for h in report.protected_hits} == {
        ("161.0.0.0/8", "overlaps protected network 161.71.0.0/16 (SaaS CRM)"),
        ("146.75.12.34", "overlaps protected network 146.75.0.0/16 (largest customer)"),
        ("146.75.128.0/17", "overlaps protected network 146.75.0.0/16 (largest customer)"),
    }
    assert report.alert.startswith("feed shadyfeed looks faulty: 3 entries overlap")
    assert "161.0.0.0/8" in report.alert


def test_protected_as_plain_list_and_ipv6():
    s = feed("2620:0:2d0::/48\n2620::/23\n2a00::1\n")
    kept, report = apply_guardrails("f", s, ["2620:0:2d0::/48"])
    assert kept.as_text() == ["2a00::1"]
    assert report.dropped_by_reason == {"overlaps protected network 2620:0:2d0::/48": 2}


@pytest.mark.parametrize("entry,label", [
    ("10.1.2.3", "private"), ("172.16.0.0/12", "private"), ("192.168.1.1", "private"),
    ("127.0.0.1", "loopback"), ("169.254.1.1", "link-local"), ("224.0.0.251", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "broadcast"), ("0.0.0.0", "unspecified"),
    ("100.64.0.1", "carrier-grade NAT"), ("8.0.0.0/6", "private"),  # 8/6 covers 10/8
    ("::1", "loopback"), ("::", "unspecified"), ("fe80::1", "link-local"),
    ("fd00::1", "unique local"), ("ff02::1", "multicast"), ("2001:db8::1", "documentation"),
    ("100::1", "discard-only"), ("4000::1", "outside global unicast"),
    ("::/0", "multicast"), ("0.0.0.0/0", "reserved"),  # a cover: reported by one range
])
def test_special_use_space_is_never_blocked(entry, label):
    kept, report = apply_guardrails("f", feed(entry + "\n8.8.8.8\n2a00::1\n"))
    assert kept.as_text() == ["8.8.8.8", "2a00::1"]
    (reason,) = report.dropped_by_reason
    assert reason.startswith("special-use: ") and label in reason
    assert not report.faulty and report.examples[0].entry == entry


def test_guardrails_match_ipaddress_bruteforce():
    rng = np.random.default_rng(11)
    lines = [str(ipaddress.IPv4Address(int(x))) for x in rng.integers(0, 2**32, 3000)]
    lines += [f"{ipaddress.IPv4Address(int(x) & ~0xFFFF)}/16" for x in rng.integers(0, 2**32, 500)]
    lines += ["161.71.9.9", "146.0.0.0/8"]
    s = feed("\n".join(lines))
    kept, report = apply_guardrails("f", s, PROTECTED)
    bad = [ipaddress.ip_network(c) for c, _ in SPECIAL_V4] + [
        ipaddress.ip_network(c) for c in PROTECTED]
    want = sorted({ipaddress.ip_network(x) for x in lines
                   if not any(ipaddress.ip_network(x).overlaps(b) for b in bad)},
                  key=lambda n: (int(n.network_address), int(n.broadcast_address)))
    assert kept.as_text() == [str(n) if n.prefixlen < 32 else str(n.network_address)
                              for n in want]
    assert report.kept + report.dropped == len(s)
    assert sum(report.dropped_by_reason.values()) == report.dropped


def test_special_tables_are_well_formed():
    for rows in (SPECIAL_V4, SPECIAL_V6, SPECIAL_V6_COARSE):
        for cidr, label in rows:
            assert ipaddress.ip_network(cidr, strict=True) and label


def test_volume_verdict():
    ok = volume_verdict(100, 500, by_feed={"a": 60, "b": 40})
    assert ok.verdict == "allow" and "within" in ok.reason
    hold = volume_verdict(5000, 500, by_feed={"a": 10, "noisy": 4900, "b": 90})
    assert hold.verdict == "hold"
    assert hold.reason == "5000 additions exceed the threshold of 500; most from noisy (4900), " \
                          "b (90), a (10)"
    assert volume_verdict(500, 500).verdict == "allow"
    assert volume_verdict(501, 500).reason == "501 additions exceed the threshold of 500"


def names(*values: str) -> IndicatorSet:
    rows = "indicator,type\n" + "".join(f"{v},{'url' if '://' in v else 'domain'}\n" for v in values)
    return parse_feed(rows.encode(), feed="f", format="csv",
                      columns={"indicator": "indicator", "type": "type"}).indicators


def test_popular_names_are_dropped_as_the_popular_domain_guardrail_reads_them():
    """Ranked inside the cut-off by registrable domain (a host under it too), a URL on such a
    site's own host (its front page or a page), but not a customer's page on a user-content
    platform's service host, nor a site ranked past the cut-off; addresses are not names."""
    from handrail.intel.guardrails import PopularNames
    from handrail.runbooks.phishing.popular import parse_ranking

    ranking = parse_ranking(["1,bigsite.com", "2,googleapis.com", "50,midsite.net"], "test list")
    popular = PopularNames(ranking, cutoff=10)
    s = names("bigsite.com", "mail.bigsite.com", "https://bigsite.com/", "https://www.bigsite.com/account/login",
              "https://storage.googleapis.com/bucket/page.html", "midsite.net", "unranked-c2.top")
    kept, report = apply_guardrails("f", s, popular=popular)
    assert sorted(kept.as_text()) == ["https://storage.googleapis.com/bucket/page.html", "midsite.net",
                                      "unranked-c2.top"]
    assert report.dropped_by_reason == {popular.reason: 4} and not report.faulty
    assert popular.reason.startswith("popular site (inside the top-sites cut-off 10)")
    assert "mail.bigsite.com (bigsite.com is rank 1)" in [e.entry for e in report.examples]
    kept, _ = apply_guardrails("f", feed("8.8.8.8\n"), popular=popular)
    assert kept.as_text() == ["8.8.8.8"]


def test_without_a_ranking_every_name_is_dropped_with_the_reason():
    from handrail.intel.guardrails import PopularNames

    popular = PopularNames(None, 10_000, "the top-sites list /x/top.csv cannot be read (No such file)")
    kept, report = apply_guardrails("f", names("unranked-c2.top", "https://unranked-c2.top/x"), popular=popular)
    assert kept.as_text() == []
    assert report.dropped_by_reason == {popular.reason: 2}
    assert popular.reason.startswith("no readable top-sites list (the top-sites list /x/top.csv cannot be read")
