"""Text from hostile systems, made safe to show a person: one rule for every output channel.

A phishing subject, a sender's name, a DLP file name, a feed entry or a NAC device name is
written by the attacker, and Handrail shows it to the approver who decides what to change:
in the terminal, in a notice, in a SIEM alert. Characters that are not text must not act
there. An ESC starts a terminal escape (clear the screen, an OSC 8 hyperlink that hides its
address), CR and NUL overwrite or cut a line, U+202E and its kin reverse what follows
(U+202E then "fdp.exe" reads "exe.pdf"), zero-width and tag characters hide text, and a line break
forges a line of its own ("Approve: handrail approve ...").

Such characters are not dropped but shown as their escape (``\\x1b``, ``\\u202e``, ``\\n``),
so the person sees that the text carried them. Each channel then applies its own syntax on
top (Rich markup in the CLI, Slack/Teams escapes in notices, CEF in syslog alerts); see the
callers (starter/output.py, handrail/notify/message.py, handrail/tools/alerts_syslog.py,
handrail/tools/cases.py).
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL; the Arabic letter mark, zero-width and directional marks, the line
# and paragraph separators, bidi embeddings/overrides/isolates, invisible operators, the BOM,
# the interlinear annotation marks and the invisible tag characters.
_FORMATTING = (r"\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
               r"\U000e0000-\U000e007f")
_ANY = re.compile(r"[\x00-\x1f" + _FORMATTING + "]")
_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f" + _FORMATTING + "]")  # keeps \t and \n
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else
                                f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def one_line(text: object) -> str:
    """``text`` as one line of plain characters: every control, line break and invisible
    formatting character shown as its escape."""
    return _ANY.sub(_escape, str(text))


def lines(text: object) -> str:
    """``text`` with its line breaks and tabs kept (CR LF and lone CR become LF), everything else
    that is not text shown as its escape. For fields that are many lines by nature (a note)."""
    return _BUT_LINES.sub(_escape, str(text).replace("\r\n", "\n").replace("\r", "\n"))


# The one placeholder for the reader's own policy user name in a command shown to copy
# (`handrail approve RUN --as YOU`): upper case like the README's RUN and PATH, and harmless
# pasted into a shell as it is (`<your name>` would be a redirection).
YOU = "YOU"

# A scheme a mail or chat client makes a link of: any RFC 3986 scheme followed by "//".
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,31}):(?=//)")


def inert_links(text: str) -> str:
    """``https://x`` written as ``https[:]//x``, the SOC's usual "defanged" form: a person reads the
    address, but no mail or chat client turns a hostile URL into a link that looks like an
    approval link (or opens the phishing page the change is about)."""
    return _SCHEME.sub(r"\1[:]", text)
