"""Where a registrable domain begins: the Public Suffix List, offline, one matcher for all.

The phishing runbook (registrable domains, ranking, look-alikes), the feed normaliser and
the gate (a block of a public suffix is a block of everyone registered under it) all ask
the same question, so they share one matcher and one answer.

The list is the snapshot that ships inside ``tldextract``, built with
``suffix_list_urls=()`` and no cache directory: it never downloads a newer list and never
writes to disk. Its private section is included (``evil.web.app`` is its own registrable
domain, not ``web.app``), and so are the RFC 2606 reserved TLDs ``example``, ``test`` and
``invalid``, which documentation and tests use in place of real names.
"""

from __future__ import annotations

from functools import lru_cache

import tldextract

RESERVED_TLDS = ("example", "test", "invalid")


@lru_cache(maxsize=1)
def extractor() -> tldextract.TLDExtract:
    """The one offline public-suffix matcher, built on first use (about 50 ms)."""
    return tldextract.TLDExtract(
        cache_dir=None,
        suffix_list_urls=(),
        fallback_to_snapshot=True,
        include_psl_private_domains=True,
        extra_suffixes=RESERVED_TLDS,
    )


@lru_cache(maxsize=1)
def _explicit_rules() -> frozenset[str]:
    return frozenset(rule for rule in extractor().tlds if not rule.startswith(("*", "!")))


def suffix_section(name: str) -> str | None:
    """The list that makes a host name *itself* a public suffix, or None.

    ``"icann"`` for a registry's suffix (``co.uk``, ``com``, ``kawasaki.jp`` under
    ``*.jp``-style rules), ``"private"`` for a platform's own (``github.io``,
    ``s3.amazonaws.com``: every customer's site lives under it), ``"reserved"`` for an
    RFC 2606 name. A name that is a suffix only by a platform's wildcard rule
    (``*.compute-1.amazonaws.com``) is one tenant's host, the way a block means it, so None;
    so is anything with a label under its suffix (``example.co.uk``). ``name`` is a
    lower-case IDNA host name.
    """
    if not name or name.startswith(".") or name.endswith("."):
        return None
    parts = extractor()(name)
    if parts.domain or parts.subdomain or parts.suffix != name:
        return None
    if name in RESERVED_TLDS:
        return "reserved"
    if not parts.is_private:
        return "icann"
    return "private" if name in _explicit_rules() else None

