"""Feed normalisation: the real FireHOL and STIX fixtures, hand-made bad lines, and the
vectorised fast path checked line-for-line against the reference parser."""

from __future__ import annotations

import ipaddress
import json
import os
import random
from collections import Counter
from pathlib import Path

import pytest

from handrail.intel import normalize as N
from handrail.intel.normalize import FeedFormatError, Rejected, parse_feed, parse_ip

pytestmark = pytest.mark.unit

FIXTURES = Path(os.environ.get("HANDRAIL_FIXTURES")
                or Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "real")
FEEDS = FIXTURES / "feeds"
STIX = FIXTURES / "stix"
needs_fixtures = pytest.mark.skipif(not FEEDS.is_dir(),
                                    reason=f"real fixtures folder {FIXTURES} is absent")

# entries per file, as in the fixtures README (verified: every non-comment line parses)
FEED_ENTRIES = {
    "firehol_level1.netset": 2729, "spamhaus_drop.netset": 940, "spamhaus_edrop.netset": 70,
    "dshield.netset": 19, "blocklist_de.ipset": 26910, "et_compromised.ipset": 7886,
    "et_block.netset": 2286, "cybercrime.ipset": 918, "bruteforceblocker.ipset": 8229,
    "feodo.ipset": 0, "feodo-2017/feodo.ipset": 1118,
}
FEED_NETWORKS = {"firehol_level1.netset": 2326, "spamhaus_drop.netset": 940,
                 "spamhaus_edrop.netset": 70, "dshield.netset": 19, "et_block.netset": 927}


def ipset(text: str | bytes, **kw):
    data = text.encode() if isinstance(text, str) else text
    return parse_feed(data, feed="t", format="ipset", **kw)


def reason_of(text: str) -> str:
    with pytest.raises(Rejected) as exc:
        parse_ip(text)
    return exc.value.reason


# real feeds ---------------------------------------------------------------------------
@needs_fixtures
@pytest.mark.parametrize("name", sorted(FEED_ENTRIES))
def test_real_feed_counts(name):
    path = FEEDS / name
    p = parse_feed(path.read_bytes(), feed=path.stem, format="netset")
    r = p.report
    assert (r.accepted, r.rejected, r.unsupported) == (FEED_ENTRIES[name], 0, 0)
    assert r.ipv4 == FEED_ENTRIES[name] and r.duplicates == 0 and r.ipv6 == 0
    assert r.ipv4_networks == FEED_NETWORKS.get(name, 0)
    assert len(r.content_sha256) == 64 and r.set_sha256 is None
    # cross-check every entry against the standard library, independently
    want = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            net = ipaddress.ip_network(line, strict=True)
            want.add((int(net.network_address), int(net.broadcast_address)))
    got = set(zip(p.indicators.v4_start.tolist(), p.indicators.v4_end.tolist(), strict=False))
    assert got == want


@needs_fixtures
def test_empty_feodo_feed():
    r = parse_feed((FEEDS / "feodo.ipset").read_bytes(), feed="feodo", format="ipset").report
    assert (r.accepted, r.rejected, r.ipv4, r.examples) == (0, 0, 0, [])


# STIX: (ipv4 distinct, domains, urls, accepted, rejected, unsupported by type)
STIX_EXPECT = {
    "apt1.json": (4, 3, 0, 7, 0, {"compound AND pattern": 2, "file": 3}),
    "indicator-for-c2-ip-address.json": (1, 0, 0, 1, 0, {}),
    "indicator-for-malicious-url.json": (0, 0, 1, 1, 0, {}),
    "indicator-to-campaign-relationship.json": (1, 0, 0, 1, 0, {}),
    "indicators-for-C2-with-COA.json": (1, 0, 0, 1, 0, {"file": 1}),
    "malicious-email-indicator-with-attachment.json": (0, 0, 0, 0, 0, {"email-message": 2}),
    "poisonivy.json": (18, 24, 0, 64, 1, {"file": 2}),
    "sighting-of-an-indicator.json": (0, 0, 1, 1, 0, {}),
    "using-granular-markings.json": (0, 0, 0, 0, 0, {"email-message": 1}),
    "using-marking-definitions.json": (1, 0, 0, 1, 0, {}),
}


@needs_fixtures
@pytest.mark.parametrize("name", sorted(STIX_EXPECT))
def test_real_stix_counts(name):
    p = parse_feed((STIX / name).read_bytes(), feed=name, format="stix")
    r = p.report
    ipv4, domains, urls, accepted, rejected, unsupported = STIX_EXPECT[name]
    assert (r.ipv4, r.domains, r.urls) == (ipv4, domains, urls)
    assert (r.accepted, r.rejected, r.unsupported_by_type) == (accepted, rejected, unsupported)
    assert r.unsupported == sum(unsupported.values())


@needs_fixtures
def test_stix_details():
    apt1 = parse_feed((STIX / "apt1.json").read_bytes(), feed="apt1", format="stix").indicators
    assert apt1.as_text() == ["58.246.0.0/15", "112.64.0.0/15", "139.226.0.0/15",
                              "223.166.0.0/15", "arrowservice.net", "hugesoft.org",
                              "msnhome.org"]
    ivy = parse_feed((STIX / "poisonivy.json").read_bytes(), feed="ivy", format="stix")
    assert ivy.report.rejects_by_reason == {N.R_BAD_DOMAIN: 1}
    (ex,) = ivy.report.examples
    assert ex.text == "domain autuo.xicp.net" and ex.ref.startswith("indicator--")
    url = parse_feed((STIX / "sighting-of-an-indicator.json").read_bytes(), feed="s",
                     format="stix").indicators
    assert url.urls == ("http://paypa1.banking.com/",)


def test_stix_patterns_by_hand():
    bundle = """{"type": "bundle", "id": "bundle--1", "objects": [
      {"type": "indicator", "id": "indicator--a", "pattern_type": "stix",
       "pattern": "[ipv6-addr:value = '2001:4860::/32'] OR [url:value = 'HTTP://Evil.COM:80/a b']"},
      {"type": "indicator", "id": "indicator--b", "pattern_type": "stix",
       "pattern": "[ipv4-addr:value = '1.2.3.4/24' OR ipv4-addr:value = '::ffff:1.2.3.4']"},
      {"type": "indicator", "id": "indicator--c", "pattern_type": "sigma", "pattern": "x"},
      {"type": "indicator", "id": "indicator--d", "pattern_type": "stix",
       "pattern": "[ipv4-addr:value ISSUBSET '198.51.100.0/24'] WITHIN 5 SECONDS"},
      {"type": "indicator", "id": "indicator--e", "pattern_type": "stix", "pattern": "nonsense"},
      {"type": "indicator", "id": "indicator--f", "pattern_type": "stix",
       "pattern": "[domain-name:value = 'B\\u00fccher.de'] OR [ipv4-addr:value ISSUBSET '10.0.0.0/8']"}
    ]}"""
    p = parse_feed(bundle.encode(), feed="hand", format="stix")
    r = p.report
    assert p.indicators.as_text() == ["10.0.0.0/8", "2001:4860::/32", "xn--bcher-kva.de"]
    assert r.rejects_by_reason == {N.R_BAD_URL: 1, N.R_FAMILY: 1, N.R_HOST_BITS: 1,
                                   N.R_PATTERN: 1}
    assert r.unsupported_by_type == {"pattern_type sigma": 1,
                                     "qualified or sequenced pattern": 1}
    with pytest.raises(FeedFormatError):
        parse_feed(b"{not json", feed="x", format="stix")


# hand-made lines --------------------------------------------------------------------
@pytest.mark.parametrize("text,reason", [
    ("999.1.1.1", N.R_OCTET_RANGE),
    ("10.0.0.0/33", N.R_PREFIX),
    ("1.2.3.4/24", N.R_HOST_BITS),
    ("010.1.1.1", N.R_LEADING_ZEROS),
    ("1.2.3.0/024", N.R_PREFIX),
    ("10.0.0.0/255.0.0.0", N.R_PREFIX),
    ("1.2.3", N.R_BAD_V4),
    ("1..2.3", N.R_BAD_V4),
    ("1.2.3.4-1.2.3.9", N.R_RANGE_SYNTAX),
    ("evil.example", N.R_NOT_IP),
    ("2001:db8::/129", N.R_PREFIX),
    ("2001:db8::1/64", N.R_HOST_BITS),
    ("2001:db8:::1", N.R_BAD_V6),
    ("fe80::1%eth0", N.R_ZONE),
    ("::ffff:010.1.1.1", N.R_BAD_V6),
])
def test_bad_values_have_specific_reasons(text, reason):
    assert reason_of(text) == reason


def test_normalised_forms():
    assert parse_ip("::ffff:1.2.3.4") == (4, 0x01020304, 0x01020304)
    assert parse_ip("::ffff:10.0.0.0/104") == (4, 0x0A000000, 0x0AFFFFFF)
    assert parse_ip("1.2.3.4/32") == (4, 0x01020304, 0x01020304)
    assert parse_ip("2001:DB8::1/128") == parse_ip("2001:db8::1")
    assert parse_ip("0.0.0.0/0") == (4, 0, 2**32 - 1)


def test_text_quirks_bom_crlf_comments_blanks():
    data = ("\ufeff1.2.3.4\r\n"            # BOM + CRLF
            "# a comment line\r\n"
            "\r\n"
            "   \t\n"                       # blank with spaces
            "5.6.7.0/24 # trailing comment\n"
            "  8.8.8.8  \n"
            "9.9.9.9/32\n"
            "::ffff:1.2.3.4\n"             # same as line 1 after normalisation
            "999.1.1.1\n"
            "010.1.1.1 # octal?\n"
            "1.2.3.4/24\n"
            "10.0.0.0/33").encode()       # no final newline
    p = ipset(data)
    r = p.report
    assert p.indicators.as_text() == ["1.2.3.4", "5.6.7.0/24", "8.8.8.8", "9.9.9.9"]
    assert (r.accepted, r.rejected, r.duplicates) == (5, 4, 1)
    assert r.rejects_by_reason == {N.R_HOST_BITS: 1, N.R_PREFIX: 1, N.R_LEADING_ZEROS: 1,
                                   N.R_OCTET_RANGE: 1}
    assert [(e.line, e.text) for e in r.examples] == [
        (9, "999.1.1.1"), (10, "010.1.1.1"), (11, "1.2.3.4/24"), (12, "10.0.0.0/33")]


def test_invalid_utf8_and_examples_cap():
    data = b"\xff\xfe1.2.3.4\n" + b"999.0.0.1\n" * 150 + b"1.1.1.1 # \xff comment ok\n"
    r = parse_feed(data, feed="t", format="ipset", max_examples=100).report
    assert r.rejects_by_reason == {N.R_ENCODING: 1, N.R_OCTET_RANGE: 150}
    assert r.accepted == 1 and len(r.examples) == 101


def test_domains_and_urls():
    assert N.normalize_domain("WWW.Example.COM.") == "www.example.com"
    assert N.normalize_domain("bücher.de") == "xn--bcher-kva.de"
    # one tenant of a platform is a domain; the platform's suffix itself is everyone's
    assert N.normalize_domain("someone.github.io") == "someone.github.io"
    assert N.normalize_domain("ec2-198-51-100-7.compute-1.amazonaws.com") == \
        "ec2-198-51-100-7.compute-1.amazonaws.com"  # a platform wildcard's name: one host
    for bad, reason in [("co.uk", N.R_SUFFIX_ONLY), ("host.invalidtld", N.R_NO_SUFFIX),
                        ("github.io", N.R_SUFFIX_ONLY), ("s3.amazonaws.com", N.R_SUFFIX_ONLY),
                        ("phish.test", N.R_NO_SUFFIX),
                        ("a b.com", N.R_BAD_DOMAIN), ("-x.com", N.R_BAD_DOMAIN),
                        ("1.2.3.4", N.R_BAD_DOMAIN)]:
        with pytest.raises(Rejected) as exc:
            N.normalize_domain(bad)
        assert exc.value.reason == reason, bad
    assert N.normalize_url("HTTP://Evil.Example.COM:80/Path?q=1#frag") == \
        "http://evil.example.com/Path?q=1"
    assert N.normalize_url("https://[2001:DB8::1]:8443") == "https://[2001:db8::1]:8443/"
    assert N.normalize_url("http://x4z9arb.cn/4712/%7e") == "http://x4z9arb.cn/4712/%7E"
    assert N.normalize_url("http://bücher.de/ü") == "http://xn--bcher-kva.de/%C3%BC"
    for bad, reason in [("javascript:alert(1)", N.R_BAD_URL), ("mailto://a@b.com", N.R_URL_SCHEME),
                        ("http://010.1.1.1/", N.R_URL_HOST), ("http://a b.com/", N.R_BAD_URL)]:
        with pytest.raises(Rejected) as exc:
            N.normalize_url(bad)
        assert exc.value.reason == reason, bad


def test_csv_with_column_mapping():
    data = ("\ufeffip,kind,seen\n"
            "1.2.3.4,ip,x\n"
            "010.1.1.1,ipv4,x\n"
            "Evil.Example.com,domain,x\n"
            "http://evil.example.com/a,url,x\n"
            "d41d8cd98f00b204e9800998ecf8427e,md5,x\n"
            ",ip,x\n"
            "2001:db8::/32,,x\n"
            "short\n"
            "5.6.7.0/24,cidr,x\n").encode()
    p = parse_feed(data, feed="c", format="csv", columns={"indicator": "ip", "type": "kind"})
    r = p.report
    assert p.indicators.as_text() == ["1.2.3.4", "5.6.7.0/24", "2001:db8::/32",
                                      "evil.example.com", "http://evil.example.com/a"]
    assert r.rejects_by_reason == {N.R_LEADING_ZEROS: 1, N.R_EMPTY: 1, N.R_MISSING_COLUMN: 1}
    assert r.unsupported_by_type == {"md5": 1}
    assert sorted(e.line for e in r.examples) == [3, 7, 9]
    with pytest.raises(FeedFormatError):
        parse_feed(data, feed="c", format="csv", columns={"indicator": "nope"})


# fast path == reference parser ------------------------------------------------------
def _reference(data: bytes) -> tuple[set, Counter]:
    got, reasons = set(), Counter()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for raw in data.split(b"\n"):
        raw = raw.split(b"#", 1)[0]
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            reasons[N.R_ENCODING] += 1
            continue
        if not text:
            continue
        try:
            got.add(parse_ip(text))
        except Rejected as r:
            reasons[r.reason] += 1
    return got, reasons


def test_fast_path_agrees_with_reference_parser():
    rng = random.Random(7)
    pieces = ["0", "1", "9", "10", "25", "255", "256", "01", "00", "999", "1234", ".", ".",
              ".", "/", "/8", "/24", "/32", "/33", "/0", "/07", " ", "\t", "\r", "#x", "a",
              ":", "::", "-", "\x0b", "\xa0"]
    lines = []
    for _ in range(20000):
        if rng.random() < 0.5:  # mostly well-formed quads, some with host bits / odd prefixes
            q = ".".join(str(rng.choice([0, 1, 10, 127, 192, 255, 256, 300])) for _ in range(4))
            lines.append(q + rng.choice(["", "", "/8", "/16", "/24", "/32", "/31", " ", "\r"]))
        else:
            lines.append("".join(rng.choice(pieces) for _ in range(rng.randint(0, 9))))
    data = "\n".join(lines).encode()
    p = ipset(data)
    want, reasons = _reference(data)
    got = {(4, s, e) for s, e in zip(p.indicators.v4_start.tolist(),
                                     p.indicators.v4_end.tolist(), strict=False)}
    got |= {(6, s, e) for s, e in zip(p.indicators.v6_start.tolist(),
                                      p.indicators.v6_end.tolist(), strict=False)}
    assert got == want
    assert p.report.rejects_by_reason == dict(reasons)


def test_ipv6_fast_text_path_agrees_with_ipaddress():
    rng = random.Random(3)
    for _ in range(20000):
        parts = ["".join(rng.choice("0123456789abcdefABCDEF")
                         for _ in range(rng.choice([0, 1, 2, 4, 4, 5])))
                 for _ in range(rng.randint(1, 10))]
        s = ":".join(parts)
        try:
            want = int(ipaddress.IPv6Address(s))
        except ValueError:
            want = None
        try:
            got = N._v6_value(s)
        except Rejected:
            got = None
        assert got == want, s


# hostile feeds: one clear answer for the feed, never an exception the sync cannot read --------
LONG_DIGITS = "1" * 5000  # more digits than int() converts (Python's 4300-digit limit)


@pytest.mark.parametrize("text,reason", [
    (LONG_DIGITS + ".1.1.1", N.R_OCTET_RANGE),
    ("1.2.3.0/" + LONG_DIGITS, N.R_PREFIX),
    ("::/" + LONG_DIGITS, N.R_PREFIX),
    ("1.2.3.0/0024", N.R_PREFIX),
])
def test_numbers_of_thousands_of_digits_are_rejected_lines(text, reason):
    assert reason_of(text) == reason
    p = ipset(f"{text}\n8.8.8.8\n")
    assert p.report.rejects_by_reason == {reason: 1} and p.indicators.as_text() == ["8.8.8.8"]


def test_a_long_octet_in_csv_and_stix_is_a_rejected_value():
    csv_feed = parse_feed(f"ip\n{LONG_DIGITS}.1.1.1\n8.8.8.8\n".encode(), feed="c", format="csv",
                          columns={"indicator": "ip"})
    assert csv_feed.report.rejects_by_reason == {N.R_OCTET_RANGE: 1} and csv_feed.report.accepted == 1
    stix = stix_feed({"type": "indicator", "pattern": f"[ipv4-addr:value = '{LONG_DIGITS}.1.1.1']"})
    assert stix.report.rejects_by_reason == {N.R_OCTET_RANGE: 1}


def stix_feed(doc):
    return parse_feed(doc if isinstance(doc, bytes) else json.dumps(doc).encode(), feed="s", format="stix")


@pytest.mark.parametrize("data,says", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"type": "indicator", "pattern": "x", "n": ' + b"1" * 5000 + b"}", "too many digits"),
    (b'{"type": "bundle", "objects": 5}', "objects are not a list"),
    (b'{"type": "bundle", "objects": {"a": 1}}', "objects are not a list"),
])
def test_an_unreadable_stix_document_is_a_feed_format_error(data, says):
    with pytest.raises(FeedFormatError, match=says):
        stix_feed(data)


def test_a_stix_indicator_with_a_non_text_id_or_pattern_type_is_rejected_alone():
    good = {"type": "indicator", "id": "indicator--ok", "pattern": "[domain-name:value = 'evil.example.com']"}
    p = stix_feed({"type": "bundle", "objects": [
        {"type": "indicator", "id": {"x": 1}, "pattern": "junk"},
        {"type": "indicator", "id": [1], "pattern": "[x]"},
        {"type": "indicator", "id": "indicator--p", "pattern_type": [], "pattern": "x"},
        {"type": "indicator", "id": "indicator--q", "pattern": [[1]]},
        good]})
    assert p.report.rejects_by_reason == {N.R_STIX_OBJECT: 3, N.R_PATTERN: 1}
    assert p.indicators.as_text() == ["evil.example.com"]
    assert all(len(e.text) < 60 for e in p.report.examples)  # the type, never the value


def test_a_csv_field_over_the_csv_modules_limit_is_a_feed_format_error():
    with pytest.raises(FeedFormatError, match="line 2"):
        parse_feed(b"ip\n" + b"x" * 140_000 + b"\n8.8.8.8\n", feed="c", format="csv",
                   columns={"indicator": "ip"})
    with pytest.raises(FeedFormatError):  # in the header too
        parse_feed(b"x" * 140_000 + b"\n8.8.8.8\n", feed="c", format="csv", columns={"indicator": "ip"})


def test_an_over_long_stix_pattern_is_unparseable_and_the_others_still_parse():
    flood = "[a:b = ( " * (N.MAX_PATTERN_CHARS // 9 + 1)  # each '(' once scanned to the end: quadratic
    assert len(flood) > N.MAX_PATTERN_CHARS
    longest = "[url:value = 'http://evil.example.com/" + "a" * (N.MAX_PATTERN_CHARS - 60) + "']"
    p = stix_feed({"type": "bundle", "objects": [
        {"type": "indicator", "id": "indicator--flood", "pattern": flood},
        {"type": "indicator", "id": "indicator--long", "pattern": longest},
        {"type": "indicator", "id": "indicator--ip", "pattern": "[ipv4-addr:value = '45.142.212.61']"}]})
    assert p.report.rejects_by_reason == {N.R_PATTERN: 1}
    assert p.report.examples[0].ref == "indicator--flood" and len(p.report.examples[0].text) == 200
    assert p.report.accepted == 2 and "45.142.212.61" in p.indicators.as_text()
