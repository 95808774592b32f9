"""Is a domain dressed up as a brand? Digit/letter swaps, homoglyphs, brand plus lure words.

The brands are not a hand list: they are the labels of the top entries of the top-sites
ranking (``paypal`` from ``paypal.com``) plus the names the policy protects
(``[settings.phishing] brands`` and the company's allowlisted domains). A brand's own
domains are never look-alikes: a name that is itself in the ranking is an established
site, and a label equal to the brand (``paypal.de``) is the brand.

What counts (each returns which brand and how, for the evidence):

* **swap**: the label reads as the brand once digits and look-alike letter pairs are read
  as letters (``paypa1``, ``micr0soft``, ``rnicrosoft``), alone or with lure words;
* **homoglyph**: an IDN label (``xn--pypal-4ve``, shown as ``pаypal`` with a Cyrillic а)
  whose characters map to the brand with the Unicode confusables table;
* **brand plus words**: the brand with lure words around it (``docusign-envelope-review``,
  ``appleid-verify``, ``secure-paypal-login``);
* **brand in the subdomain**: ``paypal.com.account-check.example``;
* **typo**: one edit away from a brand of six letters or more (``paypall``); weaker.

Pure string work; the confusables table ships inside ``confusable_homoglyphs``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import idna
from confusable_homoglyphs import confusables

from handrail.suffixes import extractor

MIN_BRAND = 5  # shorter labels ("live", "bing", "dhl") match too much prose to be brands
MIN_TYPO_BRAND = 6

# Words phishing domains put around a brand. Not brands, never from the fixtures: the
# vocabulary of account, payment and document lures.
LURE_WORDS = frozenset("""
login logon log signin sign signon verify verification verified secure security safe account accounts
update updates support help helpdesk service services billing bill payment payments pay wallet confirm
confirmation auth authentication authenticate id recovery recover unlock unlocked locked reset password
passwd portal online webmail mail email alert alerts notice notification notify review document documents
doc docs file files share shared invoice invoices refund refunds claim customer customers client team
center centre app apps access session validate validation check protect protection office cloud mobile
web my official info us usa hq desk care renew renewal activate activation restore storage drive
delivery parcel tracking track package shipping order orders member members user users reward rewards
bonus gift prize tax fee fees bank banking card cards pass pw sso mfa otp 2fa 365 envelope sign-in
jobs job careers career hr payroll benefits resolution dispute limited suspended unusual activity
settings profile quote quotes voicemail fax ticket tickets case claims message messages inbox
""".split())
# Lure words attackers glue straight onto a brand (``appleid``, ``paypalverify``): the strong
# ones only, so ordinary compounds (``healthcare``, ``netflixfans``) stay unflagged.
GLUE_WORDS = frozenset("""login logon signin signon verify verification secure security account accounts
update support id auth billing wallet recovery unlock reset password passwd helpdesk service services
365 sso mfa""".split())
TYPO_TOP = 1000  # swaps and one-letter typos are judged against the best-known brands only

_SWAPS = (("0", "o"), ("3", "e"), ("4", "a"), ("5", "s"), ("7", "t"), ("8", "b"), ("9", "g"),
          ("rn", "m"), ("vv", "w"), ("cl", "d"))
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Brands:
    """Brand labels (``paypal``) and the domains that are the brands themselves."""

    labels: frozenset[str]
    own_domains: frozenset[str]  # ranked or protected domains: never look-alikes
    well_known: frozenset[str] = frozenset()  # top TYPO_TOP + protected: what swaps and typos copy
    hyphenated: frozenset[str] = frozenset()  # brands with a hyphen (handrail-corp): matched whole
    by_length: dict[int, tuple[str, ...]] = field(default_factory=dict, compare=False)  # well_known

    def __post_init__(self) -> None:
        if not self.hyphenated and any("-" in b for b in self.labels):
            object.__setattr__(self, "hyphenated", frozenset(b for b in self.labels if "-" in b))
        if not self.by_length and self.well_known:
            lengths: dict[int, list[str]] = {}
            for brand in sorted(self.well_known):
                lengths.setdefault(len(brand), []).append(brand)
            object.__setattr__(self, "by_length", {n: tuple(v) for n, v in lengths.items()})


@dataclass(frozen=True)
class Lookalike:
    brand: str
    how: str  # swap | homoglyph | brand-plus-words | brand-in-subdomain | typo
    detail: str

    @property
    def strong(self) -> bool:
        return self.how != "typo"


def brand_label(domain: str) -> str | None:
    """The registrable label of a domain (``paypal`` for ``www.paypal.co.uk``)."""
    label = extractor()(domain).domain
    return label or None


def make_brands(top_domains: list[str], protected: list[str],
                ranked: set[str] | frozenset[str] = frozenset()) -> Brands:
    """Brands from the ranking's top entries and the policy's protected names or domains."""
    labels = set()
    typo = set()
    own = set(ranked)
    for index, name in enumerate(list(top_domains) + list(protected)):
        name = name.strip().lower().rstrip(".")
        if not name:
            continue
        label = brand_label(name) if "." in name else name
        if "." in name:
            own.add(name)
        if label and len(label) >= MIN_BRAND and label not in LURE_WORDS and not label.isdigit():
            labels.add(label)
            if index < TYPO_TOP or index >= len(top_domains):
                typo.add(label)
    return Brands(frozenset(labels), frozenset(own), frozenset(typo))


def _deleet(token: str) -> set[str]:
    """The readings of a token with digits and look-alike letter pairs read as letters."""
    text = token
    for old, new in _SWAPS:
        text = text.replace(old, new)
    readings = {text.replace("1", "l"), text.replace("1", "i")}
    return readings


@lru_cache(maxsize=4096)
def _unicode_skeleton(label: str) -> str | None:
    """An IDN label's Latin reading via the confusables table, or None if not an IDN."""
    if not label.startswith("xn--"):
        return None
    try:
        text = idna.decode(label)
    except idna.IDNAError:
        try:
            text = label.encode("ascii").decode("idna")
        except (UnicodeError, ValueError):
            return None
    out = []
    for char in text:
        if char.isascii():
            out.append(char)
            continue
        found = confusables.is_confusable(char, preferred_aliases=["latin"], greedy=True) or []
        latin = next((h["c"] for item in found for h in item["homoglyphs"]
                      if h["c"].isascii() and h["c"].isalnum()), None)
        out.append(latin.lower() if latin else char)
    return "".join(out)


def _lure_only(tokens: list[str]) -> bool:
    """Every token is a lure word or a short number: ``login-verify``, ``365``, not ``green``."""
    return bool(tokens) and all(t in LURE_WORDS or (t.isdigit() and len(t) <= 4) for t in tokens)


def _with_words(tokens: list[str], brand_labels: frozenset[str]) -> tuple[str, str] | None:
    """A brand among the tokens (exactly, or glued to a lure word) and only lure words besides.

    Requiring *only* lure words besides the brand keeps ordinary names that happen to
    contain a popular word (``green-energy-update``, ``summit-health-portal``) out.
    """
    for i, token in enumerate(tokens):
        rest = tokens[:i] + tokens[i + 1:]
        if token in brand_labels and _lure_only(rest):
            return token, "-".join(rest)
        if not rest or _lure_only(rest):
            for brand in _glued_brands(token, brand_labels):
                return brand, token
    return None


def _glued_brands(token: str, brand_labels: frozenset[str]):
    """``appleid`` -> apple, ``verifypaypal`` -> paypal: brand glued to a lure word."""
    for word in GLUE_WORDS:
        if len(word) < 2 or len(token) <= len(word) + MIN_BRAND - 1:
            continue
        if token.endswith(word) and token[: -len(word)] in brand_labels:
            yield token[: -len(word)]
        elif token.startswith(word) and token[len(word):] in brand_labels:
            yield token[len(word):]


def _swapped_inside(token: str, reading: str) -> bool:
    """True when the token and its reading differ somewhere other than the first/last letter."""
    if len(token) != len(reading):
        return True  # rn -> m and the like: a letter-pair swap, never a plain number
    diff = [i for i, (a, b) in enumerate(zip(token, reading, strict=True)) if a != b]
    return any(0 < i < len(token) - 1 for i in diff)


def _one_edit(a: str, b: str) -> bool:
    """True when a and b differ by one insertion, deletion, substitution or transposition."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def lookalike(domain: str, brands: Brands, host: str | None = None) -> Lookalike | None:
    """How ``domain`` (a registrable domain; ``host`` the full link host) imitates a brand."""
    if domain in brands.own_domains or not brands.labels:
        return None
    label = brand_label(domain)
    if not label or label in brands.labels:
        return None  # the brand itself (another TLD of it) or no label at all
    skeleton = _unicode_skeleton(label)
    if skeleton is not None:
        for reading in {skeleton} | _deleet(skeleton):
            if reading in brands.labels:
                return Lookalike(reading, "homoglyph", f"{label} reads as {reading} (Unicode look-alike letters)")
            tokens = _TOKEN.findall(reading)
            hit = _with_words(tokens, brands.labels)
            if hit:
                return Lookalike(hit[0], "homoglyph", f"{label} reads as {reading}: {hit[0]} with {hit[1]}")
    tokens = _TOKEN.findall(label)
    for brand in (b for b in brands.hyphenated if f"-{b}-" in f"-{label}-"):
        rest = _TOKEN.findall(f"-{label}-".replace(f"-{brand}-", "-", 1))
        if _lure_only(rest):
            return Lookalike(brand, "brand-plus-words", f"{label}: the brand {brand} with {'-'.join(rest)}")
    for token in tokens:
        for reading in _deleet(token):
            # A swap only at the token's edge (footba11, sport5, 1news) is as often a plain
            # number: it counts for the best-known brands only; inside (micr0soft) for all.
            pool = brands.labels if _swapped_inside(token, reading) else brands.well_known
            if reading != token and reading in pool:
                return Lookalike(reading, "swap", f"{token} is {reading} with digits or letters swapped")
    hit = _with_words(tokens, brands.labels)
    if hit:
        return Lookalike(hit[0], "brand-plus-words", f"{label}: the brand {hit[0]} with {hit[1]}")
    for token in tokens:  # swapped *and* glued: paypa1verify
        for reading in _deleet(token):
            if reading != token:
                glued = next(_glued_brands(reading, brands.well_known), None)
                if glued:
                    return Lookalike(glued, "swap", f"{token} reads as {reading}: {glued} with a lure word")
    if host and host != domain:
        sub = host[: -len(domain)].rstrip(".")
        for part in _TOKEN.findall(sub):
            if part in brands.labels:
                return Lookalike(part, "brand-in-subdomain", f"{host} puts the brand {part} before another domain")
    if len(label) >= MIN_TYPO_BRAND:
        nearby = [b for n in (len(label) - 1, len(label), len(label) + 1) for b in brands.by_length.get(n, ())]
        for brand in nearby:
            if len(brand) >= MIN_TYPO_BRAND and _one_edit(label, brand):
                return Lookalike(brand, "typo", f"{label} is one letter away from {brand}")
    return None
