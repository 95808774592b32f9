"""A fixed corpus of pathological messages: what an attacker sends to stall the parser.

Each entry targets one way a parser goes super-linear or unbounded: a long run of word
characters (the old e-mail-address regex), runs of brackets and ``DOT`` (the defang
rules), ``</`` and ``<a`` floods, unclosed comments (``<!--``, ``<!-- x>``) and marked
sections (``<![CDATA[>``, ``<![if>``: the standard library's HTML parser), a URL followed
by thousands of ``)``, deep MIME nesting, many parts, huge headers, many URLs. The tests
parse every entry; ``handrail bench parse`` times them and reports the worst case against
the budget. Generated, never stored: nothing to download.
"""

from __future__ import annotations

from collections.abc import Callable

from handrail.runbooks.phishing.mail import MAX_BYTES

_HEAD = (b"From: Attacker <a@evil.example>\r\nTo: victim@corp.example\r\nSubject: hello\r\n"
         b"Message-ID: <hostile@evil.example>\r\nMIME-Version: 1.0\r\n")


def _single(body: bytes, content_type: str = "text/plain") -> bytes:
    return _HEAD + f"Content-Type: {content_type}; charset=utf-8\r\n\r\n".encode() + body


def _fill(unit: bytes, size: int) -> bytes:
    return unit * max(1, size // len(unit))


def _nested(depth: int) -> bytes:
    parts = [b"innermost text http://deep.example/x\r\n"]
    body = parts[0]
    for level in range(depth):
        boundary = f"b{level}".encode()
        body = (b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n--" + boundary
                + b"\r\nContent-Type: text/plain\r\n\r\n" + body + b"\r\n--" + boundary + b"--\r\n")
    return _HEAD + body


def _many_parts(count: int) -> bytes:
    out = [_HEAD, b"Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n"]
    for i in range(count):
        out.append(b"--x\r\nContent-Type: text/plain\r\n\r\npart %d http://p%d.example/\r\n" % (i, i))
    out.append(b"--x--\r\n")
    return b"".join(out)


def _anchor_parts(size: int, parts: int = 4) -> bytes:
    """Several HTML parts full of links: the per-message text cap, not only the per-part one."""
    html = b"".join(b"<a href=\"http://a%d.example/\">b%d.example</a>" % (i, i) for i in range(size // (48 * parts)))
    out = [_HEAD, b"Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n"]
    for _ in range(parts):
        out.append(b"--x\r\nContent-Type: text/html\r\n\r\n" + html + b"\r\n")
    out.append(b"--x--\r\n")
    return b"".join(out)


def _huge_header(size: int) -> bytes:
    return (b"From: a@evil.example\r\nMessage-ID: <h@evil.example>\r\nSubject: "
            + _fill(b"=?utf-8?q?x=41?= ", size) + b"\r\n\r\nbody\r\n")


def _many_headers(count: int) -> bytes:
    return _HEAD + b"".join(b"X-H%d: v http://h%d.example/\r\n" % (i, i) for i in range(count)) + b"\r\nbody\r\n"


def corpus(size: int = MAX_BYTES - 4096) -> dict[str, bytes]:
    """Name -> raw message, each at most ``size`` bytes of hostile body (default: the cap)."""
    cases: dict[str, Callable[[], bytes]] = {
        "word-run": lambda: _single(_fill(b"x", size)),
        "word-run-html": lambda: _single(_fill(b"x", size), "text/html"),
        "dotted-run": lambda: _single(_fill(b"a.", size)),
        "at-run": lambda: _single(_fill(b"a@", size)),
        "url-then-parens": lambda: _single(b"http://a.example/" + _fill(b")", size)),
        "bracket-run": lambda: _single(_fill(b"[", size)),
        "bracket-dot-run": lambda: _single(_fill(b"[(DOT)]", size)),
        "lower-dot-run": lambda: _single(_fill(b"aDOTb", size)),
        "hxxp-run": lambda: _single(_fill(b"hxxp[:]//", size)),
        "endtag-flood": lambda: _single(b"<html>" + _fill(b"</", size), "text/html"),
        "starttag-flood": lambda: _single(_fill(b"<a", size), "text/html"),
        "lt-flood": lambda: _single(_fill(b"<", size), "text/html"),
        "comment-flood": lambda: _single(_fill(b"<!--", size), "text/html"),
        "closed-comment-flood": lambda: _single(_fill(b"<!-- x>", size), "text/html"),
        "cdata-flood": lambda: _single(_fill(b"<![CDATA[>", size), "text/html"),
        "conditional-flood": lambda: _single(_fill(b"<![if>", size), "text/html"),
        "attribute-quote": lambda: _single(b"<a href=\"" + _fill(b"x", size), "text/html"),
        "many-urls": lambda: _single(b" ".join(b"http://u%d.example/p" % i for i in range(size // 24))),
        "many-anchors": lambda: _single(b"".join(b"<a href=\"http://a%d.example/\">b%d.example</a>" % (i, i)
                                                 for i in range(size // 48)), "text/html"),
        "anchors-in-parts": lambda: _anchor_parts(size),
        "deep-nesting": lambda: _nested(2000),
        "many-parts": lambda: _many_parts(5000),
        "huge-header": lambda: _huge_header(size),
        "many-headers": lambda: _many_headers(50_000),
        "spaces": lambda: _single(_fill(b" ", size)),
        "escaped-markup": lambda: _single(b"<script>document.write(unescape(\"" + _fill(b"%3Ca", size)
                                          + b"\"))</script>", "text/html"),
    }
    return {name: make()[: MAX_BYTES] for name, make in cases.items()}


PARSE_BUDGET_S = 15.0  # what `handrail bench parse` holds the worst case to


def bench(size: int = MAX_BYTES - 4096, only: list[str] | None = None) -> dict:
    """Parse every corpus entry once; seconds per entry, the worst case and the budget."""
    import time

    from handrail.runbooks.phishing.mail import MalformedMessage, parse_message

    results = {}
    for name, raw in corpus(size).items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        try:
            outcome = f"{len(parse_message(raw).urls)} urls"
        except MalformedMessage as exc:
            outcome = f"rejected: {exc.reason}"
        results[name] = {"seconds": round(time.perf_counter() - start, 3), "bytes": len(raw), "outcome": outcome}
    worst = max(results, key=lambda n: results[n]["seconds"]) if results else None
    return {
        "cases": results,
        "worst_case": worst,
        "worst_seconds": results[worst]["seconds"] if worst else 0.0,
        "budget_seconds": PARSE_BUDGET_S,
        "within_budget": bool(worst is None or results[worst]["seconds"] <= PARSE_BUDGET_S),
    }
