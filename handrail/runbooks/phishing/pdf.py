"""The links a PDF attachment's reader can click, read offline from hostile bytes.

A PDF lure carries no text worth judging, just a button whose link annotation
(``/URI (https://…)``) is the phishing page. These are what a reader of the PDF sees as links,
so the parser treats them as the message's links. Nothing else in the PDF is read: metadata
and fonts are full of harmless namespace URLs (``http://ns.adobe.com/…``).

Annotations sit in plain objects (PDF 1.4) or in compressed object streams (PDF 1.5 and
later), so Flate streams are inflated too, within a budget: at most ``MAX_STREAMS`` streams,
``MAX_INFLATE`` bytes out of each and ``MAX_TOTAL`` over the file, so a deflate bomb costs
a bounded amount of memory and time. Reading the strings is bounded the same way over the
whole file: at most ``MAX_STRINGS`` ``/URI`` strings (repeats and broken ones included) and
``MAX_SCAN`` bytes of them, so a flood of strings that never close (``/URI (/URI (…``, each
read up to ``MAX_URI`` bytes) costs a small, fixed amount of work however well it compresses.
An encrypted or broken PDF gives no links, never an error.
"""

from __future__ import annotations

import re
import zlib

MAX_LINKS = 50
MAX_STREAMS = 300
MAX_INFLATE = 2 * 1024 * 1024
MAX_TOTAL = 16 * 1024 * 1024
MAX_URI = 4096
MAX_STRINGS = 1000  # /URI strings read per PDF, repeats and broken ones included
MAX_SCAN = 256 * 1024  # bytes of those strings read per PDF (a string is read byte by byte)

_URI = re.compile(rb"/URI\s*([(<])")
_STREAM = re.compile(rb"(?<!end)stream\r?\n")  # a stream's start, never the "endstream" line
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}


def looks_like_pdf(data: bytes) -> bool:
    return b"%PDF-" in data[:1024]


def pdf_links(data: bytes) -> list[str]:
    """The link annotations' URIs, in order of appearance, without repeats (raw text: the
    caller normalises them like any URL and drops what is not http, https or ftp). Reading
    stops at the string or byte budget, keeping what was found before it."""
    found: list[str] = []
    strings, scan_left = MAX_STRINGS, MAX_SCAN
    for chunk in _chunks(data):
        for match in _URI.finditer(chunk):
            if strings <= 0 or scan_left <= 0:
                return found
            strings -= 1
            uri, end = _pdf_string(chunk, match.start(1), min(MAX_URI, scan_left))
            scan_left -= end - match.start(1)
            if uri and uri not in found:
                found.append(uri)
                if len(found) >= MAX_LINKS:
                    return found
    return found


def _chunks(data: bytes):
    """The file itself, then each Flate stream that holds a link annotation, inflated."""
    yield data
    budget = MAX_TOTAL
    for count, match in enumerate(_STREAM.finditer(data)):
        if count >= MAX_STREAMS or budget <= 0:
            return
        start = match.end()
        end = data.find(b"endstream", start)
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(data[start:end if end >= 0 else len(data)], min(MAX_INFLATE, budget))
        except zlib.error:
            continue  # not Flate (an image, a font) or damaged: nothing to read
        budget -= len(out)
        if b"/URI" in out:
            yield out


def _pdf_string(data: bytes, at: int, limit: int = MAX_URI) -> tuple[str | None, int]:
    """The PDF string starting at ``at`` and where reading it stopped: a literal ``(…)``
    (escapes, balanced parentheses) or a hex string ``<…>``; None when it does not end
    within ``limit`` bytes (hex digits take two bytes a character, so twice that)."""
    if data[at:at + 1] == b"<":
        end = data.find(b">", at + 1, at + 2 + 2 * limit)
        if end < 0:
            return None, min(len(data), at + 2 + 2 * limit)
        digits = re.sub(rb"[^0-9A-Fa-f]", b"", data[at + 1:end])
        try:
            return _text(bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode())), end + 1
        except ValueError:
            return None, end + 1
    out = bytearray()
    depth, i, stop = 1, at + 1, min(len(data), at + 1 + limit)
    while i < stop:
        c = data[i]
        if c == 0x5C and i + 1 < stop:  # backslash
            nxt = data[i + 1]
            if 0x30 <= nxt <= 0x37:  # up to three octal digits
                j = i + 1
                while j < min(i + 4, stop) and 0x30 <= data[j] <= 0x37:
                    j += 1
                out.append(int(data[i + 1:j], 8) & 0xFF)
                i = j
                continue
            if nxt not in (0x0A, 0x0D):  # a backslash before a line break joins the lines
                out += _ESCAPES.get(nxt, bytes([nxt]))
            i += 2
            continue
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return _text(bytes(out)), i + 1
        out.append(c)
        i += 1
    return None, stop


def _text(raw: bytes) -> str:
    if raw.startswith(b"\xfe\xff"):  # UTF-16 with a byte order mark
        return raw[2:].decode("utf-16-be", "replace").strip()
    return raw.decode("latin-1").strip()
