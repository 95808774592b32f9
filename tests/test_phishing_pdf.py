"""A PDF attachment's link annotations are the message's links; nothing else in it is read.

PDFs here are built by hand (the objects a PDF writer emits for a link annotation), plain and
in a compressed object stream, plus hostile ones: broken strings, a deflate bomb.
"""

from __future__ import annotations

import zlib
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handrail.runbooks.phishing import pdf
from handrail.runbooks.phishing.mail import parse_message
from handrail.runbooks.phishing.verdict import VerdictSettings, judge

pytestmark = pytest.mark.unit

XMP = (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' "
       b"xmlns:dc='http://purl.org/dc/elements/1.1/'/></x:xmpmeta>")


def a_pdf(*objects: bytes, version: bytes = b"1.7") -> bytes:
    body = b"".join(b"%d 0 obj\n%s\nendobj\n" % (n, o) for n, o in enumerate(objects, start=1))
    return b"%PDF-" + version + b"\n%\xe2\xe3\xcf\xd3\n" + body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


def link(uri: bytes) -> bytes:
    return b"<< /Type /Annot /Subtype /Link /Rect [0 0 100 20] /A << /S /URI /URI " + uri + b" >> >>"


def stream(content: bytes, compress: bool = True) -> bytes:
    data = zlib.compress(content) if compress else content
    flt = b" /Filter /FlateDecode" if compress else b""
    return b"<< /Type /ObjStm /Length %d%s >>\nstream\n%s\nendstream" % (len(data), flt, data)


@pytest.mark.parametrize(("written", "uri"), [
    (b"(https://lure.example/doc)", "https://lure.example/doc"),
    (b"(https://lure.example/a\\(b\\)c?x=\\061)", "https://lure.example/a(b)c?x=1"),  # escapes, octal
    (b"(https://lure.example/(nested))", "https://lure.example/(nested)"),  # balanced parentheses
    (b"(https://lure.example/long\\\n-line)", "https://lure.example/long-line"),  # a continued line
    (b"<68747470733A2F2F6C7572652E6578616D706C652F6878>", "https://lure.example/hx"),  # hex string
    (b"(\xfe\xff\x00h\x00t\x00t\x00p\x00:\x00/\x00/\x00u\x00.\x00e\x00x)", "http://u.ex"),  # UTF-16
])
def test_a_link_annotation_is_read_in_every_string_form(written, uri):
    assert pdf.pdf_links(a_pdf(link(written))) == [uri]


def test_links_in_a_compressed_object_stream_are_read_and_metadata_urls_are_not():
    data = a_pdf(stream(XMP, compress=False), stream(link(b"(https://in-objstm.example/x)")),
                 link(b"(https://plain.example/y)"), link(b"(https://plain.example/y)"))
    assert pdf.pdf_links(data) == ["https://plain.example/y", "https://in-objstm.example/x"]


@pytest.mark.parametrize("data", [
    a_pdf(link(b"(https://unterminated.example/")), a_pdf(link(b"<zz>")),
    a_pdf(b"<< /Length 5 /Filter /FlateDecode >>\nstream\n\x00\x01garbage\nendstream"),
    a_pdf(b"<< /Length 9 >>\nstream\n"),  # a stream cut off before its end
])
def test_a_broken_pdf_gives_no_links_and_no_error(data):
    assert pdf.pdf_links(data) == []


def test_only_a_pdf_is_read_as_one():
    assert pdf.looks_like_pdf(a_pdf(link(b"(https://x.example/)")))
    assert not pdf.looks_like_pdf(b"") and not pdf.looks_like_pdf(b"PK\x03\x04 /URI (https://x.example/)")
    raw = _mail_with_pdf(b"GIF89a /URI (https://in-a-gif.example/)")  # named .pdf, but not one
    assert parse_message(raw).links == []


def test_a_deflate_bomb_is_read_only_up_to_the_budget():
    head = link(b"(https://early.example/)")
    tail = link(b"(https://past-the-budget.example/)")
    bomb = zlib.compress(head + b" " * (pdf.MAX_INFLATE * 4) + tail, 9)  # a few KB in, 8 MB out
    data = a_pdf(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(bomb), bomb))
    assert len(data) < 64 * 1024
    assert pdf.pdf_links(data) == ["https://early.example/"]


def test_links_are_capped():
    data = a_pdf(*[link(b"(https://l%d.example/)" % i) for i in range(pdf.MAX_LINKS + 20)])
    assert len(pdf.pdf_links(data)) == pdf.MAX_LINKS


def test_a_compressed_flood_of_unclosed_strings_is_read_within_the_scan_budget(monkeypatch):
    """A few KB of Flate holding megabytes of ``/URI (`` that never close: unbudgeted, each string
    was read byte by byte up to MAX_URI (minutes of CPU a PDF). The reading is counted, not timed."""
    read: list[int] = []

    def counted(data, at, limit=pdf.MAX_URI):
        uri, end = original(data, at, limit)
        read.append(end - at)
        return uri, end

    original = pdf._pdf_string
    monkeypatch.setattr(pdf, "_pdf_string", counted)
    data = a_pdf(stream(link(b"(https://early.example/)") + b"/URI (" * (2 * 1024 * 1024 // 6)))
    assert len(data) < 16 * 1024
    assert pdf.pdf_links(data) == ["https://early.example/"]  # what came before the flood is kept
    assert len(read) <= pdf.MAX_STRINGS
    assert sum(read) <= pdf.MAX_SCAN + pdf.MAX_URI


def test_reading_stops_after_the_string_budget_repeats_and_broken_strings_included():
    data = a_pdf(link(b"(https://early.example/)"), b"/URI ()" * pdf.MAX_STRINGS, link(b"(https://late.example/)"))
    assert pdf.pdf_links(data) == ["https://early.example/"]


def _mail_with_pdf(document: bytes, body: str = "Your statement is attached.") -> bytes:
    msg = EmailMessage()
    msg["From"] = "billing@statement-notice.example"
    msg["To"] = "alice@corp.example"
    msg["Subject"] = "Statement"
    msg["Message-ID"] = "<pdf-1@statement-notice.example>"
    msg.set_content(body)
    msg.add_attachment(document, maintype="application", subtype="pdf", filename="Statement.pdf")
    return msg.as_bytes()


def test_a_pdf_lures_button_is_a_link_of_the_message_and_judged_as_one():
    document = a_pdf(stream(XMP, compress=False), link(b"(https://statement-view-portal.example/open)"),
                     link(b"(mailto:billing@statement-notice.example)"))
    mail = parse_message(_mail_with_pdf(document))
    assert [(link.url, link.kind) for link in mail.links] == [("https://statement-view-portal.example/open", "pdf")]
    assert "https://statement-view-portal.example/open" in mail.urls
    assert not any("w3.org" in u or "purl.org" in u for u in mail.urls)  # metadata is not read
    [row] = judge(mail, None, VerdictSettings()).domains
    assert row.domain == "statement-view-portal.example"
    assert "a link in an attached PDF leads here" in row.evidence
    assert "every link in the message leads here" in row.evidence


_PDF_TOKENS = st.sampled_from([b"/URI", b"(", b")", b"\\", b"<", b">", b"stream\n", b"endstream", b"\\0", b"\\\n",
                               b"(https://x.example/", b"<6874", zlib.compress(b"/URI (https://z.example/)"),
                               b"\xfe\xff", b" ", b"obj"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_PDF_TOKENS | st.binary(max_size=20), max_size=200).map(b"".join))
def test_any_pdf_bytes_give_a_bounded_list_of_strings_and_never_an_error(body):
    links = pdf.pdf_links(b"%PDF-1.7\n" + body)
    assert len(links) <= pdf.MAX_LINKS and all(isinstance(u, str) and len(u) <= pdf.MAX_URI for u in links)


def test_every_stream_up_to_the_limit_is_read_and_endstream_lines_do_not_count():
    filler = [stream(b"not a link", compress=False) for _ in range(pdf.MAX_STREAMS - 1)]
    data = a_pdf(*filler, stream(link(b"(https://last-stream.example/)")))
    assert pdf.pdf_links(data) == ["https://last-stream.example/"]
    assert pdf.pdf_links(a_pdf(*filler, *filler[:1], stream(link(b"(https://past.example/)")))) == []
