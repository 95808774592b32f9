"""Does a link carry the recipient's own address? A phishing kit's fingerprint.

A kit's login page greets the victim by name and pre-fills the address, so the lure's link
carries it: in the query, the path or the fragment (``#alice@corp.example``, which never
reaches the server's logs), often as base64 (``#YWxpY2VAY29ycC5leGFtcGxl``). Mail that
links to a sender's *own* site does this too (a login link, an unsubscribe link), so the
verdict counts it only on a domain that is not the sender's.

Pure string work on URLs already in the message: nothing is fetched or decoded beyond
percent-escapes, and each address is base64-encoded once, never the URL decoded.
"""

from __future__ import annotations

import base64
from urllib.parse import unquote

MAX_ADDRESSES = 20  # recipients looked for (a message to a whole list is no targeted lure)
MIN_ADDRESS = 6  # "a@b.c": shorter strings match by chance


def address_forms(addresses: list[str]) -> tuple[str, ...]:
    """Each address as it may appear in a URL: itself (lower case) and its base64 forms
    (standard and URL-safe, no padding). Built once per message."""
    forms: list[str] = []
    for address in addresses[:MAX_ADDRESSES]:
        address = address.strip().lower()
        if len(address) < MIN_ADDRESS or "@" not in address:
            continue
        encoded = base64.b64encode(address.encode()).decode().rstrip("=")
        # the last base64 character also encodes what follows the address: match without it
        forms += [address, encoded[:-1], encoded.replace("+", "-").replace("/", "_")[:-1]]
    return tuple(dict.fromkeys(f for f in forms if f))


def carries_address(url: str, forms: tuple[str, ...]) -> bool:
    """True when the URL (percent-decoded) holds one of the recipient's address forms."""
    if not forms:
        return False
    text = unquote(unquote(url))  # a wrapper percent-encodes the destination once more
    lower = text.lower()
    return any((form in lower) if "@" in form else (form in text) for form in forms)
