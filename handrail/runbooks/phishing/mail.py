"""Parse a reported phishing e-mail into indicators, offline and without trusting it.

Why it is built this way:

* **The message is hostile input.** It is size-checked before parsing, must look like
  RFC 5322 headers before it is walked, and every decoding step is lenient (unknown
  charsets and undecodable bytes are replaced, broken base64 or a bogus
  ``Content-Transfer-Encoding: 8bit+`` is read best-effort) so an attacker cannot make
  the runbook crash. Only what cannot be read at all raises :class:`MalformedMessage`,
  with a one-sentence reason for the analyst.
* **Indicators are data, never targets.** Nothing here opens, fetches or resolves a URL,
  domain or IP; host names are only IDNA-encoded and matched against the public-suffix
  snapshot bundled with ``tldextract`` (see :mod:`handrail.suffixes`).
* **The stdlib reads the structure.** ``email`` (``compat32`` policy: the most forgiving
  with broken MIME) walks nested multiparts and attached messages; ``html.parser`` reads
  HTML. Defanged text is re-fanged with ``ioc-fanger``; URL and domain rules live in
  :mod:`handrail.runbooks.phishing.indicators` so feeds and other parsers share them.
* **What a reader sees is what we extract.** URLs come from text/plain, HTML ``href``/
  ``src``-style attributes (``//host/x`` read as ``http://host/x``), visible HTML text,
  scripts, styles, comments, ``title``/``alt`` text, markup hidden as
  ``document.write(unescape("%3C..."))``, URLs a script hides as base64
  (``atob('aHR0cHM6…')``, decoded, never run), attachment file names and text-like
  attachments (HTML, calendar, plain text), and the link annotations of a PDF attachment
  (:mod:`handrail.runbooks.phishing.pdf`: the button of a PDF lure). Other binary
  attachments (images, archives, ...) are hashed, never read. Only ``http``, ``https`` and
  ``ftp`` URLs count: ``mailto:``, ``cid:``, ``data:``, ``tel:`` and ``javascript:`` are not
  links to block.
* **A reported message is judged as itself.** A "Report phishing" button (or a forward as
  attachment) sends the original as the report's one ``message/rfc822`` part, or as an
  ``.eml`` file (``application/octet-stream``; read as a message when its bytes start like
  one, one level deep, at most ``MAX_EMBEDDED``): its parts are read like any other, and its
  own sender and recipients are kept (``reported_sender``, ``judged_sender()``) so the verdict
  compares links with the lure's sender, not the colleague who reported it.
* **Link mismatches** are ``<a>`` elements whose whole visible text reads as a URL or
  host name (``https://www.paypal.com/``, ``paypal.com``) on another host than the
  ``href``; a leading ``www.`` on either side is ignored.

What ``domains`` holds: for every URL host name, both the full host name and its
registrable domain (public suffix + one label, private PSL section included); and for
every bare domain written in visible text (``NOBUX(.)SK``, ``www.example.com``), the
same two. Bare domains need a real public suffix, so ``invoice.pdf`` and ``1.5`` never
qualify. Domains of e-mail addresses (``mailto:``, senders, text) are not included:
they identify mailboxes, and blocking ``gmail.com`` would be a disaster. IP literal
hosts go to ``ips`` instead.
"""

from __future__ import annotations

import base64
import codecs
import email
import email.policy
import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.message import Message
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field

from handrail.runbooks.phishing.indicators import (
    find_bare_domains,
    find_urls,
    ip_host,
    normalise_url,
    registrable_domain,
    url_host,
)
from handrail.runbooks.phishing.pdf import looks_like_pdf, pdf_links

MAX_BYTES = 4 * 1024 * 1024
MAX_PARTS = 1000
# Decoded text read per part, and per header: past these an attacker only buys time.
MAX_PART_CHARS = 1_000_000
MAX_HEADER_CHARS = 16_384
MAX_MESSAGE_CHARS = 2_000_000  # over all parts: later parts are hashed, not read
_MB = 1024 * 1024

TEXT_TYPES = frozenset({"text/plain", "text/calendar", "text/x-vcalendar", "text/enriched"})
HTML_TYPES = frozenset(
    {"text/html", "text/x-amp-html", "text/watch-html", "application/xhtml+xml", "image/svg+xml"}
)
# fmt: off
URL_ATTRIBUTES = frozenset({
    "href", "src", "action", "formaction", "background", "poster", "cite", "longdesc",
    "data", "data-src", "data-href", "xlink:href", "url",
})
# Attributes whose text may hold URLs that are not the element's target: inline CSS
# (background: url(...)), tooltips and alternative text.
TEXT_ATTRIBUTES = frozenset({"style", "title", "alt"})
# Elements that break a line, so text on either side never runs together.
BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset",
    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "img", "li",
    "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th",
    "thead", "title", "tr", "ul",
})
_KNOWN_HEADERS = (
    "from", "to", "subject", "date", "message-id", "received", "mime-version",
    "return-path", "content-type", "delivered-to",
)
# fmt: on
_HEADER_LINE = re.compile(rb"^(?:From [^\r\n]*\r?\n)?[!-9;-~]+[ \t]*:")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_ESCAPED_MARKUP = re.compile(r"%3C[a-z!/]", re.IGNORECASE)
# A URL hidden in a script as base64 (``atob('aHR0cHM6Ly9…')``): "http" always encodes to
# "aHR0c", so the token is found without decoding every string in the script.
_BASE64_URL = re.compile(r"aHR0c[A-Za-z0-9+/_-]{8,4000}={0,2}")
MAX_BASE64_URLS = 50


class MalformedMessage(Exception):
    """The input cannot be read as an e-mail; ``reason`` says why in one sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LinkMismatch(BaseModel):
    """An ``<a>`` whose visible text is a URL on a different host than its target."""

    model_config = ConfigDict(frozen=True)
    text_url: str
    href_url: str


class Link(BaseModel):
    """Where an ``<a>`` (``kind="anchor"``), a ``<form>`` (``kind="form"``) or a PDF
    attachment's link annotation (``kind="pdf"``) sends the reader, and the words on it: the
    phishing verdict looks for calls to action ("Verify now")."""

    model_config = ConfigDict(frozen=True)
    url: str
    text: str = ""
    kind: str = "anchor"


MAX_LINKS = 500  # links kept with their text (a message with more is summarised by its URLs)
MAX_MISMATCHES = 500  # distinct link mismatches kept (one is evidence; hostile mail has thousands)


class Attachment(BaseModel):
    """A non-body MIME part: identified by name and hash, never opened."""

    model_config = ConfigDict(frozen=True)
    filename: str | None
    content_type: str
    size: int
    sha256: str


class ParsedMessage(BaseModel):
    """What Handrail knows about a reported message, all of it plain data."""

    model_config = ConfigDict(frozen=True)
    message_id: str
    sender: str
    sender_display: str
    reply_to: str | None
    recipients: list[str]
    subject: str
    date: str | None
    urls: list[str]
    domains: list[str]
    ips: list[str]
    link_mismatches: list[LinkMismatch]
    attachments: list[Attachment]
    size: int
    links: list[Link] = Field(default_factory=list)  # the first MAX_LINKS anchors and forms
    hidden_urls: list[str] = Field(default_factory=list)  # URLs a script hides as base64 (obfuscation)
    # The one message this one wraps (a "Report phishing" button or a forward as attachment sends
    # the original as a message/rfc822 part): its sender and recipients, None/[] when it wraps none.
    reported_sender: str | None = None
    reported_recipients: list[str] = Field(default_factory=list)

    def judged_sender(self) -> str:
        """The sender the verdict compares link domains with: the reported message's when this
        one only wraps it (its own sender is the colleague who reported it), else its own."""
        return self.reported_sender if self.reported_sender is not None else self.sender

    def judged_recipients(self) -> list[str]:
        """The addresses the lure was sent to: when this message wraps a reported one, that one's
        recipients and the colleague who reported it (who had it), never the phishing mailbox."""
        if self.reported_sender is None:
            return self.recipients
        return sorted(set(self.reported_recipients) | ({self.sender} if self.sender else set()))


def parse_message(raw: bytes, *, max_bytes: int = MAX_BYTES) -> ParsedMessage:
    """Parse raw RFC 5322 bytes into a :class:`ParsedMessage`, or raise MalformedMessage."""
    _check_size(raw, max_bytes)
    msg = _read_structure(raw)
    found = _Findings()
    for part in _leaf_parts(msg):
        _read_part(part, found)
        inner = _embedded_message(part, found)
        if inner is not None:  # read like an attached message/rfc822, one level deep only
            try:
                inner_parts = _leaf_parts(inner)
            except MalformedMessage:  # the attachment cannot be walked: it stays a hashed file
                inner_parts = []
            for inner_part in inner_parts:
                _read_part(inner_part, found)
    return _build(raw, msg, found)


MAX_EMBEDDED = 3  # .eml attachments read as messages (each walks up to MAX_PARTS parts)


def _embedded_message(part: Message, found: _Findings) -> Message | None:
    """An attachment whose bytes are themselves an e-mail (a reported message saved as ``.eml``
    and attached as ``application/octet-stream``): mail clients open it as a message, so its
    links are the lure's. Only non-text attachments, and only bytes that start like a message
    with the usual headers (a PDF or an image never does)."""
    if len(found.embedded) >= MAX_EMBEDDED or part.get_content_maintype() in ("text", "message", "multipart"):
        return None
    if _filename(part) is None and _disposition(part) != "attachment":
        return None
    payload = _payload(part)
    try:
        inner = _read_structure(payload)
    except MalformedMessage:
        return None
    if inner.get("From") is None:
        return None
    found.embedded.append(inner)
    return inner


# --- structure -------------------------------------------------------------------


def _check_size(raw: bytes, max_bytes: int) -> None:
    if len(raw) > max_bytes:
        raise MalformedMessage(
            f"message is {len(raw) / _MB:.1f} MB, over the {max_bytes / _MB:g} MB limit"
        )


def _read_structure(raw: bytes) -> Message:
    head = raw.lstrip(b"\r\n\t ")[:8192]
    if not _HEADER_LINE.match(head) or b"\x00" in _HEADER_END.split(head, maxsplit=1)[0]:
        raise MalformedMessage("input is not an e-mail: it does not start with a header")
    try:
        msg = email.message_from_bytes(raw, _class=_Message, policy=email.policy.compat32)
    except Exception as exc:  # the parser is lenient; anything here is fatal
        raise MalformedMessage(f"message headers cannot be parsed ({exc})") from exc
    if not any(name in msg for name in _KNOWN_HEADERS):
        raise MalformedMessage("input is not an e-mail: it has none of the usual headers")
    return msg


class _Message(Message):
    """compat32's message, but an RFC 2231 parameter (``boundary*=``, ``filename*=``,
    ``charset*=``) is decoded like any other text here: in its declared charset only when
    that is a text charset. The standard library decodes it with whatever codec it names,
    and ``idna`` raises while ``punycode`` is quadratic (the boundary is read mid-parse)."""

    def get_param(self, param: str, failobj: object = None, header: str = "content-type",
                  unquote: bool = True) -> object:
        value = super().get_param(param, failobj, header, unquote)
        if isinstance(value, tuple) and len(value) == 3:  # RFC 2231: (charset, language, text)
            charset, _, text = value
            return _decode_bytes(text.encode("raw-unicode-escape"), charset)
        return value


def _leaf_parts(msg: Message) -> list[Message]:
    try:
        leaves = [part for part in _bounded_walk(msg) if not part.is_multipart()]
    except RecursionError as exc:
        raise MalformedMessage("the MIME structure is nested too deeply to walk") from exc
    except MalformedMessage:
        raise
    except Exception as exc:
        raise MalformedMessage(f"the MIME structure cannot be walked ({exc})") from exc
    return leaves


def _bounded_walk(msg: Message) -> Iterator[Message]:
    for count, part in enumerate(msg.walk(), start=1):
        if count > MAX_PARTS:
            raise MalformedMessage(f"message has more than {MAX_PARTS} MIME parts")
        yield part


# --- parts -----------------------------------------------------------------------


@dataclass
class _Findings:
    urls: list[str] = field(default_factory=list)
    bare_domains: list[str] = field(default_factory=list)
    mismatches: dict[LinkMismatch, None] = field(default_factory=dict)  # an ordered set
    attachments: list[Attachment] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    hidden_urls: list[str] = field(default_factory=list)
    chars_left: int = MAX_MESSAGE_CHARS
    embedded: list[Message] = field(default_factory=list)  # .eml attachments read as messages

    def scan_text(self, text: str) -> None:
        urls, rest = find_urls(text)
        self.urls.extend(urls)
        self.bare_domains.extend(find_bare_domains(rest))

    def add_mismatches(self, mismatches: Iterable[LinkMismatch]) -> None:
        """The first MAX_MISMATCHES distinct mismatches of the message, all parts together."""
        for mismatch in mismatches:
            if len(self.mismatches) >= MAX_MISMATCHES:
                return
            self.mismatches[mismatch] = None

    def add_pdf_links(self, payload: bytes) -> None:
        """A PDF's link annotations are links its reader clicks (kind ``pdf``, no text)."""
        for uri in pdf_links(payload):
            url = _attr_url(uri)
            if url and len(self.links) < MAX_LINKS:
                self.urls.append(url)
                self.links.append(Link(url=url, kind="pdf"))

    def scan_html(self, markup: str, depth: int = 0) -> None:
        reader = _HtmlReader()
        try:
            reader.feed(_defuse_markup(markup))
            reader.close()
        except (AssertionError, ValueError):  # keep what was read, and read the rest as text
            self.urls.extend(find_urls(markup)[0])
        self.urls.extend(reader.attribute_urls)
        self.scan_text(reader.visible_text())
        code = reader.code_text()
        self.urls.extend(find_urls(code)[0])
        hidden = _base64_urls(code, MAX_BASE64_URLS - len(self.hidden_urls))  # per message
        self.urls.extend(hidden)
        self.hidden_urls.extend(hidden)
        self.add_mismatches(reader.mismatches)
        self.links.extend(reader.links[: max(0, MAX_LINKS - len(self.links))])
        if depth == 0 and _ESCAPED_MARKUP.search(code):  # document.write(unescape("%3C..."))
            self.scan_html(unquote(code), depth=1)


# A "<" that no ">" closes before the next "<" cannot start a tag or comment. The standard
# library's HTMLParser re-scans the rest of the input from each such "<" (floods of "</",
# "<a" or "<!--" are quadratic), so they are escaped to text first. Linear: each scan
# stops at the next "<". The text still reaches the URL scanner, so nothing is hidden.
_UNCLOSED_LT = re.compile(r"<(?![^<>]*>)")
# A marked section ("<![CDATA[", "<![if !mso]>", "<![x>") is, to a browser reading HTML, a
# bogus comment that ends at the first ">". Python 3.11's HTMLParser instead raises on any
# keyword but a few (losing the rest of the part) and, for those, looks for "]]>" or "]>"
# to the end of the input from each one (floods are quadratic). A space after "<!" makes
# each one the bogus comment a browser reads; its text still reaches the URL scanner.
_MARKED_SECTION = re.compile(r"<!\[")
# A "<!--" that a ">" closes ("<!-- x>") is no unclosed "<", yet the parser looks for "-->"
# to the end of the input from each one that nothing closes (floods are quadratic). Only
# those after the last "-->" are never closed, so they are escaped to text; found from the
# end in one pass ("--\s*>", the parser's comment end, read backwards).
_COMMENT_END_BACKWARDS = re.compile(r">\s*--")


def _defuse_markup(markup: str) -> str:
    return _defuse_unclosed_comments(_MARKED_SECTION.sub("<! [", _UNCLOSED_LT.sub("&lt;", markup)))


def _defuse_unclosed_comments(markup: str) -> str:
    last_end = _COMMENT_END_BACKWARDS.search(markup[::-1])
    # a comment's end counts from 4 characters past its "<!--", so a "<!--" starting 3 or
    # fewer characters before the last "--" (or anywhere after it) is never closed
    cut = 0 if last_end is None else max(0, len(markup) - last_end.end() - 3)
    return markup[:cut] + markup[cut:].replace("<!--", "&lt;!--")


def _read_part(part: Message, found: _Findings) -> None:
    content_type = part.get_content_type()
    filename = _filename(part)
    payload = _payload(part)
    is_attachment = filename is not None or _disposition(part) == "attachment"
    if is_attachment or content_type not in TEXT_TYPES | HTML_TYPES:
        found.attachments.append(_attachment(filename, content_type, payload))
        if filename:
            found.scan_text(filename)
        if looks_like_pdf(payload):
            found.add_pdf_links(payload)
    if content_type in HTML_TYPES | TEXT_TYPES and found.chars_left > 0:
        text = _decode_text(part, payload[: 4 * MAX_PART_CHARS])[: min(MAX_PART_CHARS, found.chars_left)]
        found.chars_left -= len(text)
        if content_type in HTML_TYPES:
            found.scan_html(text)
        else:
            found.scan_text(text)


def _payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, LookupError, TypeError):  # the raw text is still there to read
        payload = part.get_payload()
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape")
    return payload if isinstance(payload, bytes) else b""


def _decode_text(part: Message, payload: bytes) -> str:
    try:
        charset = part.get_content_charset()
    except (LookupError, ValueError):  # a garbled charset parameter: guess instead
        charset = None
    return _decode_bytes(payload, charset)


# Codecs Python registers as text encodings that are no charset a mail client decodes:
# host-name encodings (idna raises on ordinary text whatever the error handler; punycode's
# decoder is quadratic), Python literal syntax (unicode_escape reads backslashes as escapes
# and warns on unknown ones) and the codec that always fails.
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})


def _charset_codec(charset: str | None) -> str | None:
    """The codec of a declared charset, or None when it is unknown or not a text charset
    (a bytes-to-bytes codec like ``base64`` or ``zlib``, or one of ``_NOT_CHARSETS``)."""
    try:
        info = codecs.lookup(charset or "")
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode in the declared charset; without a usable one, UTF-8 else windows-1252."""
    codec = _charset_codec(charset)
    if codec:
        try:
            return data.decode(codec, "replace")
        except (LookupError, ValueError):  # UnicodeError included: a codec that fails anyway
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("windows-1252", "replace")


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except (LookupError, ValueError, TypeError):
        return None
    return _decode_header_value(name) if name else None


def _disposition(part: Message) -> str | None:
    value = part.get("Content-Disposition")
    return str(value).split(";", 1)[0].strip().lower() if value else None


def _attachment(filename: str | None, content_type: str, payload: bytes) -> Attachment:
    return Attachment(
        filename=filename,
        content_type=content_type,
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
    )


# --- HTML ------------------------------------------------------------------------


class _HtmlReader(HTMLParser):
    """Collects URL attributes, visible text, script/style text and <a> text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attribute_urls: list[str] = []
        self.mismatches: dict[LinkMismatch, None] = {}  # an ordered set, up to MAX_MISMATCHES
        self.links: list[Link] = []
        self._visible: list[str] = []
        self._code: list[str] = []
        self._hidden_depth = 0
        self._anchor: tuple[str | None, list[str]] | None = None

    def visible_text(self) -> str:
        return "".join(self._visible)

    def code_text(self) -> str:
        return "\n".join(self._code)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden_depth += 1
        if tag in BLOCK_TAGS:
            self._visible.append("\n")
        for name, value in attrs:
            self._read_attribute(tag, name, value or "")
        if tag == "a":  # each link is its own piece of text, even when adjacent
            self._close_anchor()
            self._visible.append(" ")
            self._anchor = (_attr_url(dict(attrs).get("href")), [])
        if tag == "form" and len(self.links) < MAX_LINKS:
            action = _attr_url(dict(attrs).get("action"))
            if action:
                self.links.append(Link(url=action, kind="form"))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in ("script", "style"):
            self._hidden_depth -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden_depth:
            self._hidden_depth -= 1
        if tag in BLOCK_TAGS:
            self._visible.append("\n")
        if tag == "a":
            self._close_anchor()
            self._visible.append(" ")

    def handle_data(self, data: str) -> None:
        if self._hidden_depth:
            self._code.append(data)
            return
        self._visible.append(data)
        if self._anchor is not None:
            self._anchor[1].append(data)

    def handle_comment(self, data: str) -> None:
        self._code.append(data)  # commented-out markup and Outlook conditional blocks

    def close(self) -> None:
        super().close()
        self._close_anchor()

    def _read_attribute(self, tag: str, name: str, value: str) -> None:
        if name in URL_ATTRIBUTES:
            url = _attr_url(value)
            if url:
                self.attribute_urls.append(url)
        elif name == "srcset":
            for item in value.split(","):
                url = _attr_url(item.strip().split(" ")[0])
                if url:
                    self.attribute_urls.append(url)
        elif name in TEXT_ATTRIBUTES or (tag == "meta" and name == "content"):
            self._code.append(value)

    def _close_anchor(self) -> None:
        if self._anchor is None:
            return
        href_url, text = self._anchor
        self._anchor = None
        if href_url and len(self.links) < MAX_LINKS:
            self.links.append(Link(url=href_url, text=_collapse_space("".join(text))[:120]))
        text_url = _text_as_url("".join(text))
        if href_url and text_url and _host_key(text_url) != _host_key(href_url) \
                and len(self.mismatches) < MAX_MISMATCHES:
            self.mismatches[LinkMismatch(text_url=text_url, href_url=href_url)] = None


def _base64_urls(code: str, limit: int) -> list[str]:
    """Up to ``limit`` URLs a script hides as base64 strings, decoded (never run) and normalised."""
    found: list[str] = []
    if limit <= 0:
        return found
    for match in itertools.islice(_BASE64_URL.finditer(code), limit):
        token = match.group(0).rstrip("=").replace("-", "+").replace("_", "/")
        try:
            text = base64.b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        except (ValueError, UnicodeDecodeError):
            continue
        found.extend(find_urls(text)[0][:1])  # the decoded string is one URL (and what may follow it)
    return found


def _attr_url(value: str | None) -> str | None:
    """An absolute web URL from an attribute value (``www.`` and ``//`` count as http).

    A value that is not itself a URL but holds one (``3D"https://..."`` left by a
    mislabelled quoted-printable part, ``javascript:open('https://...')``) yields that.
    """
    if not value:
        return None
    value = "".join(value.split())  # attribute values often wrap inside the URL
    if value.lower().startswith("www."):
        value = "http://" + value
    elif value.startswith("//"):  # scheme-relative: mail has no base, clients use http
        value = "http:" + value
    url = normalise_url(value)
    if url is None and "://" in value:
        url = next(iter(find_urls(value)[0]), None)
    return url


def _text_as_url(text: str) -> str | None:
    """A URL if the whole visible link text reads as one (scheme optional)."""
    token = text.strip().strip("<>\"'").rstrip(".,;:!?")
    if not token or any(ch.isspace() for ch in token):
        return None
    if "://" not in token:
        if not find_bare_domains(token.split("/", 1)[0]):
            return None
        token = "http://" + token
    return normalise_url(token)


def _host_key(url: str) -> str:
    host = url_host(url)
    return host.removeprefix("www.")


# --- headers and result ----------------------------------------------------------


def _decode_header_value(value: object) -> str:
    """RFC 2047-decode a header in any charset; undecodable bytes are replaced.

    compat32 hands back raw 8-bit header bytes (UTF-8 or a legacy charset, not RFC 2047)
    as a ``Header`` in the ``unknown-8bit`` charset, or as surrogate escapes.
    """
    if value is None:
        return ""
    if isinstance(value, str) and len(value) > MAX_HEADER_CHARS:
        value = value[:MAX_HEADER_CHARS]
    if isinstance(value, Header):
        text = "".join(_decode_bytes(data, None) for data, _ in decode_header(value))
    else:
        text = _undo_surrogates(str(value))
    return _collapse_space(_decode_words(text) if "=?" in text else text)


def _decode_words(text: str) -> str:
    try:
        chunks = decode_header(text)
    except (ValueError, HeaderParseError):  # a malformed encoded word stays as written
        return text
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None:  # unencoded text between encoded words
            out.append(chunk.decode("raw-unicode-escape", "replace"))
        else:
            out.append(_decode_bytes(chunk, charset))
    return "".join(out)


def _undo_surrogates(text: str) -> str:
    if text.isascii() or not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    return _decode_bytes(text.encode("utf-8", "surrogateescape"), None)


def _collapse_space(text: str) -> str:
    return " ".join(text.split())


def _header(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    return None if value is None else _decode_header_value(value)


def _addresses(msg: Message, *names: str) -> list[str]:
    found: set[str] = set()
    for name in names:
        for value in msg.get_all(name) or []:
            pairs = _address_list(_decode_header_value(value))
            found.update(addr.strip().lower() for _, addr in pairs if "@" in addr)
    return sorted(found)


def _address_list(value: str) -> list[tuple[str, str]]:
    """The addresses of one header; none when it cannot be read. The standard library reads a
    comment inside a comment by recursing, one level per "(": a thousand raise RecursionError."""
    try:
        return getaddresses([value])
    except RecursionError:
        return []


def _address(value: str) -> tuple[str, str]:
    """(display name, address) of a From or Reply-To; both empty when it cannot be read."""
    try:
        return parseaddr(value)
    except RecursionError:
        return "", ""


def _message_id(msg: Message, raw: bytes) -> str:
    value = (_header(msg, "Message-ID") or "").strip().strip("<>").strip()
    return value or "sha256:" + hashlib.sha256(raw).hexdigest()


def _wrapped_message(msg: Message, embedded: list[Message]) -> Message | None:
    """The one message attached at the top level (``message/rfc822``, or an ``.eml`` file), if
    exactly one: the message a user reported, which the phishing mailbox receives in the report."""
    payload = msg.get_payload() if msg.is_multipart() else None
    attached = [part for part in payload if isinstance(part, Message)
                and part.get_content_type() == "message/rfc822"] if isinstance(payload, list) else []
    messages = [inner[0] if isinstance(inner, list) and inner else inner
                for inner in (part.get_payload() for part in attached)]
    messages = [m for m in messages if isinstance(m, Message)] + embedded
    return messages[0] if len(messages) == 1 else None


def _build(raw: bytes, msg: Message, found: _Findings) -> ParsedMessage:
    display, sender = _address(_header(msg, "From") or "")
    wrapped = _wrapped_message(msg, found.embedded)
    reported_sender = _address(_header(wrapped, "From") or "")[1].lower() if wrapped is not None else None
    display = display.strip()
    reply_to = _address(_header(msg, "Reply-To") or "")[1] or None
    urls = sorted(set(found.urls))
    return ParsedMessage(
        message_id=_message_id(msg, raw),
        sender=sender.lower(),
        sender_display=display,
        reply_to=reply_to.lower() if reply_to else None,
        recipients=_addresses(msg, "To", "Cc", "Delivered-To"),
        subject=_header(msg, "Subject") or "",
        date=_header(msg, "Date"),
        urls=urls,
        domains=_domains(urls, found.bare_domains),
        ips=sorted({h for h in map(url_host, urls) if ip_host(h)}),
        link_mismatches=sorted(found.mismatches, key=lambda m: (m.text_url, m.href_url)),
        attachments=found.attachments,
        size=len(raw),
        links=found.links,
        hidden_urls=found.hidden_urls,
        reported_sender=reported_sender,
        reported_recipients=_addresses(wrapped, "To", "Cc", "Delivered-To") if wrapped is not None else [],
    )


def _domains(urls: list[str], bare: list[str]) -> list[str]:
    names = {h for h in map(url_host, urls) if not ip_host(h)} | set(bare)
    registrable = {registrable_domain(n) for n in names}
    return sorted((names | registrable) - {None})  # type: ignore[operator]
