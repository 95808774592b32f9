"""Cross-feed consensus, content-addressed storage and cached re-normalisation."""

from __future__ import annotations

import pytest

from handrail.intel.consensus import additions, attribute, find_consensus
from handrail.intel.models import FeedSpec
from handrail.intel.normalize import parse_feed
from handrail.intel.pipeline import (
    consensus_of_stored,
    guard_stored_set,
    normalize_stored_feed,
    run_sync_pass,
)
from handrail.intel.store import IntelStore, decode_set, encode_set

pytestmark = pytest.mark.unit


def feed(text: str, fmt: str = "ipset"):
    return parse_feed(text.encode(), feed="f", format=fmt).indicators


def test_exact_match_across_two_feeds_is_validated():
    c = find_consensus({"a": feed("5.5.5.5\n6.6.6.6\n"), "b": feed("5.5.5.5\n7.7.7.7\n")})
    assert c.validated.as_text() == ["5.5.5.5"]
    assert c.suspect.as_text() == ["6.6.6.6", "7.7.7.7"]


def test_address_in_network_counts_for_the_network_feed():
    c = find_consensus({"a": feed("5.5.5.0/24\n"), "b": feed("5.5.5.77\n9.9.9.9\n")})
    # the address is named by both; the /24 only by a (b said nothing about the rest)
    assert c.validated.as_text() == ["5.5.5.77"]
    assert c.suspect.as_text() == ["5.5.5.0/24", "9.9.9.9"]


def test_network_in_network_and_union_coverage():
    c = find_consensus({
        "a": feed("20.0.0.0/8\n"),
        "b": feed("20.1.0.0/16\n30.0.0.0/25\n30.0.0.128/25\n"),
        "c": feed("30.0.0.0/24\n"),
    })
    # 20.1/16 sits inside a's /8; c's /24 is covered by the union of b's two /25s
    assert c.validated.as_text() == ["20.1.0.0/16", "30.0.0.0/25", "30.0.0.0/24",
                                     "30.0.0.128/25"]
    assert c.suspect.as_text() == ["20.0.0.0/8"]


def test_one_feed_only_is_suspect_and_weights_count():
    only = find_consensus({"a": feed("1.1.1.1\n"), "b": feed("2.2.2.2\n")})
    assert len(only.validated) == 0 and len(only.suspect) == 2
    sets = {"weak": feed("8.8.8.8\n"), "strong": feed("8.8.8.8\n")}
    assert len(find_consensus(sets, {"weak": 0.5}).validated) == 0          # 1.5 < 2.0
    assert len(find_consensus(sets, {"weak": 0.5}, threshold=1.5).validated) == 1
    assert len(find_consensus(sets, {"weak": 1.0}).validated) == 1
    three = {"x": feed("8.8.8.8\n"), "y": feed("8.8.8.8\n"), "z": feed("8.8.8.8\n")}
    assert len(find_consensus(three, {"x": 0.7, "y": 0.7, "z": 0.6}).validated) == 1


def test_ipv6_domains_and_urls():
    bundle_a = ('{"type":"bundle","objects":[{"type":"indicator","pattern_type":"stix",'
                '"pattern":"[domain-name:value = \'Evil.com\' OR url:value = \'http://evil.com\' '
                'OR ipv6-addr:value = \'2001:4860::/32\']"}]}')
    a = feed(bundle_a, "stix")
    b = parse_feed(b"v\nevil.com\nhttp://evil.com/\n2001:4860:1::1\nsub.evil.com\n", feed="b",
                   format="csv", columns={"indicator": "v"}).indicators
    c = find_consensus({"a": a, "b": b})
    assert c.validated.as_text() == ["2001:4860:1::1", "evil.com", "http://evil.com/"]
    assert c.suspect.as_text() == ["2001:4860::/32", "sub.evil.com"]


def test_additions_and_attribution():
    old = feed("1.1.1.1\n2.2.2.2\n")
    new = feed("1.1.1.1\n3.3.3.3\n4.4.4.0/24\n")
    added = additions(old, new)
    assert added.as_text() == ["3.3.3.3", "4.4.4.0/24"]
    assert attribute(added, {"a": feed("3.3.3.3\n"), "b": feed("4.0.0.0/8\n3.3.3.3\n")}) == {
        "a": 1, "b": 2}


def test_store_roundtrip_is_deterministic(tmp_path):
    s = feed("1.2.3.4\n10.0.0.0/8\n2001:db8::/32\n")
    s2 = parse_feed(b"v\nevil.com\nhttp://evil.com/\n", feed="c", format="csv",
                    columns={"indicator": "v"}).indicators
    for x in (s, s2, feed("")):
        assert encode_set(decode_set(encode_set(x))) == encode_set(x)
    store = IntelStore(tmp_path)
    h1, h2 = store.put_set(s), IntelStore(tmp_path / "other").put_set(feed("10.0.0.0/8\n1.2.3.4\n"
                                                                          "2001:db8::/32\n"))
    assert h1 == h2 and (tmp_path / f"{h1}.iset").exists()
    assert store.get_set(h1).as_text() == s.as_text()
    with pytest.raises(ValueError):
        store.get_set("../etc/passwd")


def test_unchanged_feed_reuses_the_cached_set(tmp_path, monkeypatch):
    store = IntelStore(tmp_path)
    data = b"# hdr\n1.2.3.4\n999.0.0.1\n5.6.7.0/24\n"
    first = store.normalize(data, feed="a", format="ipset")
    assert not first.cached and first.accepted == 2 and first.rejected == 1

    import handrail.intel.store as store_mod

    def boom(*a, **k):
        raise AssertionError("parsed again")

    monkeypatch.setattr(store_mod, "parse_feed", boom)
    again = store.normalize(data, feed="renamed", format="ipset")
    assert again.cached and again.feed == "renamed"
    assert again.set_sha256 == first.set_sha256 and again.rejects_by_reason == \
        first.rejects_by_reason
    with pytest.raises(AssertionError):  # different content: parsed
        store.normalize(data + b"9.9.9.9\n", feed="a", format="ipset")


def test_activity_shaped_steps_and_sync_pass_agree(tmp_path):
    store = IntelStore(tmp_path)
    raw = {"a": b"5.5.5.0/24\n161.71.0.0/8\n10.1.2.3\n", "b": b"5.5.5.9\n161.71.3.4\n"}
    shas = {n: store.put_feed(d) for n, d in raw.items()}
    clean = {}
    for n, h in shas.items():
        parsed = normalize_stored_feed(store, FeedSpec(name=n), h)
        guard = guard_stored_set(store, n, parsed.set_sha256, {"161.71.0.0/16": "CRM"})
        clean[n] = guard.clean_set_sha256
    by_steps = consensus_of_stored(store, clean)
    whole = run_sync_pass([(FeedSpec(name=n), d) for n, d in raw.items()], store,
                          protected={"161.71.0.0/16": "CRM"})
    assert by_steps == whole.consensus
    assert store.get_set(by_steps.validated_sha256).as_text() == ["5.5.5.9"]
    assert whole.rejected == 1  # 161.71.0.0/8 has host bits set
    assert [g.faulty for g in whole.guardrails] == [False, True]
