"""Hostile mail: the parser is linear and capped, and it runs off the worker's event loop.

Speed itself is measured by `handrail bench parse`, never asserted here: these tests
parse the pathological corpus (at a size where the old quadratic code took minutes, so
the suite's timeout would catch a regression) and check behaviour.
"""

from __future__ import annotations

import asyncio
import functools
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activities.offloop import DeadlineExceeded, run_bounded
from handrail.gate.policy import default_policy_path
from handrail.intel.state import IntelState
from handrail.intel.store import IntelStore
from handrail.runbooks.phishing import mail
from handrail.runbooks.phishing.hostile import bench, corpus
from handrail.runbooks.phishing.indicators import _trim, fang, find_urls
from handrail.runbooks.phishing.mail import MalformedMessage, ParsedMessage, parse_message


def _intel(home):
    """A worker's intel store and state in a folder of the test's own (the parse stores its evidence there)."""
    from types import SimpleNamespace

    store = IntelStore(home / "store")
    return SimpleNamespace(store=store, state=IntelState(home / "intel.db", store))

pytestmark = pytest.mark.unit

SIZE = 256 * 1024  # the old e-mail regex needed ~3 minutes for this many "x"


@functools.cache
def hostile(name: str) -> bytes:
    return _CORPUS()[name]


@functools.cache
def _CORPUS() -> dict[str, bytes]:
    return corpus(SIZE)


@pytest.mark.parametrize("name", sorted(corpus(1024)))
def test_every_pathological_message_parses_or_is_rejected_with_a_reason(name):
    raw = hostile(name)
    try:
        parsed = parse_message(raw)
    except MalformedMessage as exc:
        assert exc.reason and "\n" not in exc.reason
        return
    assert isinstance(parsed, ParsedMessage)


def test_links_are_still_found_in_the_corpus():
    parsed = parse_message(hostile("many-anchors"))
    assert "http://a0.example/" in parsed.urls
    assert parse_message(hostile("deep-nesting")).urls == ["http://deep.example/x"]


def test_bench_reports_the_worst_case_against_the_budget():
    result = bench(4096, ["word-run", "endtag-flood"])
    assert set(result["cases"]) == {"word-run", "endtag-flood"}
    assert result["worst_case"] in result["cases"] and result["budget_seconds"] > 0
    assert isinstance(result["within_budget"], bool)


def test_trailing_brackets_are_trimmed_in_one_pass():
    assert _trim("http://a.example/(x))") == "http://a.example/(x)"
    assert _trim("http://a.example/x" + ")" * 100_000 + ".,") == "http://a.example/x"
    assert _trim("http://a.example/[a]]") == "http://a.example/[a]"


def test_defanging_survives_bracket_floods_and_keeps_working():
    assert fang("hxxps://login[.]evil[.]com/x") == "https://login.evil.com/x"
    assert fang("[" * 200_000).startswith("[")  # cut to a few, instantly
    urls, _ = find_urls("see hxxp://bad(.)com/x and " + "x" * 200_000 + " a@b.example")
    assert urls == ["http://bad.com/x"]


def test_unclosed_markup_is_read_as_text_so_its_links_still_count():
    html = b'<p>hi <a title="<b>" href="http://hidden.example/x">click</a> <!-- ' + b"</" * 50_000
    raw = (b"From: a@evil.example\r\nMessage-ID: <m@x>\r\nContent-Type: text/html\r\n\r\n" + html)
    assert "http://hidden.example/x" in parse_message(raw).urls


def _html_mail(html: bytes) -> bytes:
    return b"From: a@evil.example\r\nMessage-ID: <m@x>\r\nContent-Type: text/html\r\n\r\n" + html


_LURE = b'<p>Your mailbox is full</p><a href="http://login-lure.example/verify">Verify now</a>'


@pytest.mark.parametrize("section", [b"<![x>", b"<![ >", b"<![if !mso]>", b"<![CDATA[>", b"<![CDATA[ ]]>"])
def test_links_after_a_marked_section_are_read(section):
    """Python 3.11's HTML parser raises on an unknown marked section ("<![x>"); a browser reads
    one as a comment up to its ">", and so must we, or every link after it is lost."""
    parsed = parse_message(_html_mail(section + _LURE))
    assert parsed.urls == ["http://login-lure.example/verify"]
    assert [(link.url, link.text) for link in parsed.links] == [("http://login-lure.example/verify", "Verify now")]


@pytest.mark.parametrize("unit", [b"<![CDATA[ ]>", b"<![CDATA[>", b"<![if>"])
def test_a_flood_of_unclosed_marked_sections_keeps_the_links_after_it(unit):
    """Each of these once made the parser search to the end of the part (quadratic: 1 MB took
    half a minute); read as comments, a 200 KB flood is one pass and the lure after it counts."""
    parsed = parse_message(_html_mail(unit * (200 * 1024 // len(unit)) + _LURE))
    assert parsed.urls == ["http://login-lure.example/verify"]
    assert [link.text for link in parsed.links] == ["Verify now"]
    # what the parser is fed: a bogus comment ("<!" and a space), never a section to search the end of
    assert mail._defuse_markup(unit.decode()) == "<! " + unit.decode()[2:]


def test_comments_no_comment_end_follows_are_text_and_earlier_comments_stay_comments():
    """"<!-- x>" has its ">", yet nothing ends the comment: the parser searched to the end of the
    part from each one (quadratic; 500 KB took half a minute). After the last "-->" they are text."""
    comment = b'<!--[if mso]><a href="http://in-comment.example/">x</a><![endif]-->'
    parsed = parse_message(_html_mail(comment + b"<!-- x>" * (200 * 1024 // 7) + _LURE))
    assert parsed.urls == ["http://in-comment.example/", "http://login-lure.example/verify"]
    assert [link.url for link in parsed.links] == ["http://login-lure.example/verify"]  # a comment is no link
    # what the parser is fed, decided in one pass: it never searches for an end that is not there
    assert mail._defuse_markup("<!-- a --><!-- b>") == "<!-- a -->&lt;!-- b>"


def test_markup_the_html_parser_gives_up_on_is_still_read_for_urls(monkeypatch):
    """Whatever the parser still raises on, the links it had not reached are read as text, not dropped."""
    def give_up(self, data):
        raise AssertionError("unexpected markup")

    monkeypatch.setattr(mail._HtmlReader, "handle_comment", give_up)
    parsed = parse_message(_html_mail(b'<a href="http://before.example/a">a</a><!-- x -->' + _LURE))
    assert {"http://before.example/a", "http://login-lure.example/verify"} <= set(parsed.urls)


_HEAD = b"From: a@evil.example\r\nTo: v@corp.example\r\nMessage-ID: <m@x>\r\nMIME-Version: 1.0\r\n"


@pytest.mark.parametrize("charset", ["idna", "IDNA", "punycode", "unicode_escape", "undefined", "base64"])
def test_a_codec_that_is_no_text_charset_is_read_like_an_unknown_charset(charset):
    """Python registers host-name and literal-syntax codecs under charset-like names: ``idna``
    raised out of the parser, ``punycode`` is quadratic and mangles the text. Declared as a
    charset anywhere (body, encoded word, RFC 2231 parameter), they read like an unknown one."""
    cs = charset.encode()
    body = _HEAD + b"Subject: =?" + cs + b"?q?hello?=\r\nContent-Type: text/plain; charset=" + cs
    assert parse_message(body + b"\r\n\r\nsee http://lure.example/x\r\n").urls == ["http://lure.example/x"]
    assert parse_message(body + b"\r\n\r\nx\r\n").subject == "hello"
    attached = (_HEAD + b"Subject: s\r\nContent-Type: multipart/mixed; boundary*=" + cs + b"''b\r\n\r\n--b\r\n"
                b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=" + cs
                + b"''invoice.exe\r\n\r\nAAAA\r\n--b--\r\n")
    assert [a.filename for a in parse_message(attached).attachments] == ["invoice.exe"]


def test_a_large_body_declared_in_punycode_is_read_as_text():
    """The punycode decoder is quadratic (800 KB took 12 s of CPU): the body is read as UTF-8 instead."""
    raw = (_HEAD + b"Subject: s\r\nContent-Type: text/plain; charset=punycode\r\n\r\n"
           + b"abcdefghijklmnopqrstuvwxyz-" * (200 * 1024 // 27) + b" http://lure.example/x\r\n")
    assert parse_message(raw).urls == ["http://lure.example/x"]


def test_an_address_header_nested_too_deeply_to_read_names_no_address():
    """A thousand "(" made the standard library's address parser recurse until RecursionError,
    out of the parser; such a header is read as naming no address, and the rest of the mail counts."""
    nested = b"(" * 1000
    raw = (b"From: " + nested + b"\r\nReply-To: " + nested + b"\r\nTo: " + nested + b"\r\nCc: b@corp.example\r\n"
           b"Message-ID: <m@x>\r\nSubject: s\r\n\r\nsee http://lure.example/x\r\n")
    parsed = parse_message(raw)
    assert (parsed.sender, parsed.sender_display, parsed.reply_to) == ("", "", None)
    assert parsed.recipients == ["b@corp.example"]
    assert parsed.urls == ["http://lure.example/x"]


def test_text_beyond_the_per_message_cap_is_not_read():
    from handrail.runbooks.phishing import mail

    late = b"http://late.example/"
    raw = (b"From: a@evil.example\r\nMessage-ID: <m@x>\r\nContent-Type: text/plain\r\n\r\n"
           + b"x " * (mail.MAX_PART_CHARS // 2) + late)
    assert "http://late.example/" not in parse_message(raw).urls


_TOKENS = st.sampled_from([
    "<", "</", "<a", ">", "<!--", "-->", "\"", "'", "=", "href=", "http://", "hxxp://", "[.]", "(.)", "DOT",
    "@", ".", "x", "xx.example", " ", "\r\n", "%3C", "&amp;", "&#", ")", "(", "[", "]", "=?utf-8?q?", "?=",
    "--b\r\n", "Content-Type: multipart/mixed; boundary=b\r\n\r\n", "\u200b", "ｇ", "。",
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.lists(_TOKENS, max_size=400).map("".join),
       ctype=st.sampled_from(["text/plain", "text/html", "multipart/mixed; boundary=b"]),
       noise=st.binary(max_size=200))
def test_fuzzed_messages_never_crash_the_parser(body, ctype, noise):
    raw = (f"From: a@evil.example\r\nMessage-ID: <f@x>\r\nContent-Type: {ctype}\r\n\r\n".encode()
           + body.encode("utf-8") + noise)
    try:
        parse_message(raw)
    except MalformedMessage:
        pass


@given(st.binary(max_size=2000))
@settings(max_examples=100, deadline=None)
def test_fuzzed_bytes_are_parsed_or_rejected(raw):
    try:
        parse_message(raw)
    except MalformedMessage:
        pass


async def test_slow_work_runs_off_the_event_loop_and_ends_at_its_deadline():
    release = threading.Event()
    ticks = 0

    async def ticker():
        nonlocal ticks
        while not release.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    with pytest.raises(DeadlineExceeded):
        await run_bounded(release.wait, 30, deadline_s=0.3, heartbeat_every_s=0.05)
    seen = ticks
    release.set()
    await ticking
    assert seen > 1  # the loop kept running while the work was blocked
    assert await run_bounded(lambda: threading.current_thread().name, deadline_s=5) != threading.current_thread().name


def test_a_stix_pattern_of_one_long_word_is_rejected_not_stalled():
    import json

    from handrail.intel.normalize import parse_feed

    bundle = {"type": "bundle", "objects": [{"type": "indicator", "id": "indicator--1", "pattern_type": "stix",
                                             "pattern": "[" + "a" * 200_000 + "]"}]}
    report = parse_feed(json.dumps(bundle).encode(), feed="f", format="stix").report
    assert report.rejected == 1


async def test_a_message_not_parsed_in_time_is_rejected_with_the_reason(tmp_path, monkeypatch):
    """phishing_parse, one function, with a stand-in mailbox and a parser that never ends."""
    from types import SimpleNamespace

    import activities.phishing as phishing
    from handrail.runbooks.phishing.rules import ParseRequest

    release = threading.Event()

    class Mailbox:
        async def fetch_raw(self, mailbox_id):
            return hostile("word-run")

    def stuck(raw, context):
        release.wait(30)
        raise MalformedMessage("released")

    monkeypatch.setattr(phishing, "triage", stuck)
    monkeypatch.setattr(phishing, "load_context", lambda *args: None)
    monkeypatch.setattr(phishing, "PARSE_DEADLINE_S", 0.3)
    acts = phishing.PhishingActivities(SimpleNamespace(
        settings=SimpleNamespace(store_dir=tmp_path, policy_path=default_policy_path(), home=tmp_path),
        tools=SimpleNamespace(mailbox=Mailbox()), ledger=None,
        intel=_intel(tmp_path)))
    try:
        report = await acts.phishing_parse(ParseRequest(mailbox_id="MSG-1", run_id="r"))
    finally:
        release.set()
    assert report.rejected == "the message could not be parsed within 0.3 s"


async def test_a_message_whose_bytes_changed_since_it_was_reported_is_rejected(tmp_path):
    from types import SimpleNamespace

    import activities.phishing as phishing
    from handrail.runbooks.phishing.rules import ParseRequest

    class Mailbox:
        async def fetch_raw(self, mailbox_id):
            return hostile("deep-nesting")

    acts = phishing.PhishingActivities(SimpleNamespace(
        settings=SimpleNamespace(store_dir=tmp_path, policy_path=default_policy_path(), home=tmp_path),
        tools=SimpleNamespace(mailbox=Mailbox()), ledger=None,
        intel=_intel(tmp_path)))
    report = await acts.phishing_parse(ParseRequest(mailbox_id="MSG-1", run_id="r", sha256="0" * 64))
    assert "hash mismatch" in report.rejected
    report = await acts.phishing_parse(ParseRequest(mailbox_id="MSG-1", run_id="r"))
    assert report.rejected is None and report.urls == ["http://deep.example/x"]
