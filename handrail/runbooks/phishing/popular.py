"""Where a domain stands in a top-sites ranking (Tranco format: ``rank,domain`` per line).

Phishing mail links to the services a company runs on (logos, footers, the real login page
next to the fake one). Sinkholing one of them takes the company down, so a domain ranked
inside the policy's cut-off is never sinkholed or taken down automatically: the
`popular_domain` guardrail holds it for a human (see `handrail.gate.guardrails`).

Matching is by registrable domain with the public-suffix list's private section included,
which is the same as "by host" for user-content platforms: ``docs.google.com`` stands
where ``google.com`` stands, but ``evil.web.app`` and ``someone.github.io`` are their own
registrable domains and are not covered by the rank of ``web.app`` or ``github.io``.

No list ships with Handrail (the lists have their own licences and go stale);
`handrail popular refresh` writes one where the policy says. Without a readable list
nothing is known to be unpopular, so the guardrail fails safe: every sinkhole holds.

Nothing here touches the network; `refresh` (the CLI) is the only code that downloads.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from handrail.runbooks.phishing.indicators import ip_host, normalise_host, platform_suffix, registrable_domain
from handrail.suffixes import extractor

DEFAULT_CUTOFF = 10_000
DEFAULT_BRANDS_TOP = 10_000
DEFAULT_FILE = Path("popular") / "top-sites.csv"  # under HANDRAIL_HOME unless the policy says
MAX_LINES = 5_000_000  # a full Tranco list is 1M lines; refuse anything absurd


# Hosts that a user-content platform serves itself, path-style, for every customer at once
# (storage.googleapis.com/<bucket>/..., fonts.googleapis.com): the customer is in the path, so
# the host stands where the platform stands. Generic service words, not a list of sites.
PLATFORM_SERVICE_LABELS = frozenset("""
www api apis ajax fonts storage static cdn content contents media img image images assets files
file download downloads docs drive maps s3 blob blobs cloud login accounts auth js css
""".split())


def _service_label(label: str) -> bool:
    """A service word, or a storage service's compound name (``firebasestorage``): object
    storage is where path-style customer content lives. No other compound: a customer site
    named like a service (``secure-files``, ``microsoft-login``) must stay its own."""
    return label in PLATFORM_SERVICE_LABELS or "storage" in label


def platform_host(host: str) -> bool:
    """A platform's own service host, serving every customer's content path-style
    (``storage.googleapis.com/<bucket>/…``): by the public-suffix list's private section, a
    platform hosting independent parties, and a service label, not a customer's name; or the
    platform's suffix host itself (``s3.amazonaws.com/<bucket>/…``)."""
    parts = extractor()(host)
    if parts.suffix and not parts.domain:
        return platform_suffix(host)
    return bool(parts.domain and parts.suffix and parts.is_private and _service_label(parts.domain))


def rank_key(host: str) -> str | None:
    """The name a host is ranked by: its registrable domain (PSL private section included),
    except a platform's own service host, ranked as the platform (``fonts.googleapis.com``,
    ``s3.amazonaws.com``)."""
    parts = extractor()(host)
    if parts.suffix and not parts.domain and platform_suffix(host):
        registry = extractor()(host, include_psl_private_domains=False)  # amazonaws.com
        return f"{registry.domain}.{registry.suffix}" if registry.domain and registry.suffix else None
    if not parts.domain or not parts.suffix:
        return None
    if parts.is_private and _service_label(parts.domain):
        return parts.top_domain_under_registry_suffix or f"{parts.domain}.{parts.suffix}"
    return f"{parts.domain}.{parts.suffix}"


class RankingUnavailable(Exception):
    """The ranking cannot be read; ``reason`` is one sentence for `show` and the CLI."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PopularSettings:
    """The policy's `[settings.popular]`: where the list is and what counts as popular."""

    path: Path
    cutoff: int = DEFAULT_CUTOFF
    brands_top: int = DEFAULT_BRANDS_TOP

    @classmethod
    def from_policy(cls, settings: dict[str, Any], home: Path, policy_dir: Path) -> "PopularSettings":
        section = settings.get("popular", {}) if isinstance(settings, dict) else {}
        try:
            return cls._build(section, home, policy_dir)
        except (TypeError, ValueError, AttributeError) as exc:
            from handrail.gate.policy import PolicyError

            raise PolicyError(f"[settings.popular] is invalid: {exc}") from None

    @classmethod
    def _build(cls, section: dict[str, Any], home: Path, policy_dir: Path) -> "PopularSettings":
        raw = section.get("path")
        if raw:
            path = Path(os.path.expandvars(str(raw))).expanduser()
            path = path if path.is_absolute() else policy_dir / path
        else:
            path = home / DEFAULT_FILE
        return cls(path=path, cutoff=int(section.get("cutoff", DEFAULT_CUTOFF)),
                   brands_top=int(section.get("brands_top", DEFAULT_BRANDS_TOP)))


class Ranking:
    """A loaded list: registrable domain -> best (lowest) rank."""

    def __init__(self, ranks: dict[str, int], source: str) -> None:
        self.ranks = ranks
        self.source = source

    def __len__(self) -> int:
        return len(self.ranks)

    # How a change's target names its host, and whether a host is a platform's own service
    # host: what a caller judging targets against a loaded ranking needs with it (the intel
    # feed guardrails are handed one, and import nothing of the phishing runbook).
    @staticmethod
    def host_of(target: str) -> str | None:
        return target_host(target)

    @staticmethod
    def is_platform_host(host: str) -> bool:
        return platform_host(host)

    def rank(self, domain: str) -> int | None:
        return self.ranks.get(domain)

    def rank_of_host(self, host: str) -> tuple[str | None, int | None]:
        """(registrable domain, its rank): a host stands where its registrable domain stands.

        With the PSL private section a user-content host (``evil.web.app``) is its own
        registrable domain, so the platform's rank never covers it.
        """
        if ip_host(host):
            return None, None
        domain = registrable_domain(host) or host
        return domain, self.ranks.get(rank_key(host) or domain)

    def top(self, n: int) -> list[str]:
        """The domains ranked 1..n, best first."""
        return [d for d, r in sorted(self.ranks.items(), key=lambda item: item[1]) if r <= n]


def parse_ranking(lines, source: str) -> Ranking:
    """Read ``rank,domain`` lines; a line that is not one is an error naming its number."""
    ranks: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if number > MAX_LINES:
            raise RankingUnavailable(f"{source} has more than {MAX_LINES} lines; it is not a top-sites list")
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        rank_text, sep, name = line.partition(",")
        if not sep or not rank_text.strip().isdigit():
            raise RankingUnavailable(f"{source} line {number} is not 'rank,domain': {line[:80]!r}")
        domain = name.strip().lower().rstrip(".")  # Tranco lists registrable (pay-level) names
        if not domain or not domain.isascii():
            continue  # IDNs appear in their xn-- form; anything else cannot match a link
        rank = int(rank_text)
        if rank < ranks.get(domain, rank + 1):
            ranks[domain] = rank
    if not ranks:
        raise RankingUnavailable(f"{source} holds no 'rank,domain' lines")
    return Ranking(ranks, source)


_cache: dict[str, tuple[tuple[float, int], Ranking]] = {}
_lock = threading.Lock()


def load_ranking(path: Path) -> Ranking:
    """The list at ``path``, cached until the file changes. Blocking: call it off the event loop."""
    key = str(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise RankingUnavailable(f"the top-sites list {path} cannot be read ({exc.strerror or exc}); "
                                 f"run `handrail popular refresh`") from None
    stamp = (stat.st_mtime, stat.st_size)
    with _lock:
        cached = _cache.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            ranking = parse_ranking(handle, str(path))
    except OSError as exc:
        raise RankingUnavailable(f"the top-sites list {path} cannot be read ({exc.strerror or exc})") from None
    with _lock:
        _cache[key] = (stamp, ranking)
    return ranking


def target_host(target: str) -> str | None:
    """The host a change is about: the target itself, or a URL target's host."""
    text = target.strip()
    if "://" in text:
        try:
            text = urlsplit(text).hostname or ""
        except ValueError:
            return None
    return normalise_host(text.rstrip(".")) if text else None


@dataclass(frozen=True)
class Standing:
    """Where one name stands: what was looked up, its rank, and whether it is popular."""

    target: str
    domain: str | None  # the registrable domain that was ranked (None for IPs / non-names)
    rank: int | None
    cutoff: int
    source: str
    problem: str | None = None  # why no answer can be given (the list is unreadable)

    @property
    def popular(self) -> bool:
        return self.rank is not None and self.rank <= self.cutoff

    def as_fact(self) -> dict[str, Any]:
        return {"target": self.target, "domain": self.domain, "rank": self.rank, "cutoff": self.cutoff,
                "source": self.source, "problem": self.problem}

    def describe(self) -> str:
        if self.problem:
            return self.problem
        if self.domain is None:
            return f"{self.target} is not a domain name"
        if self.rank is None:
            return f"{self.domain} is not in the top-sites list ({self.source})"
        where = "inside" if self.popular else "outside"
        return f"{self.domain} is rank {self.rank:,} in the top-sites list, {where} the cut-off {self.cutoff:,}"


def standing(target: str, settings: PopularSettings) -> Standing:
    """Look a change target (domain, host or URL) up. Blocking (reads the list on first use)."""
    host = target_host(target)
    domain = None if host is None or ip_host(host) else (registrable_domain(host) or host)
    try:
        ranking = load_ranking(settings.path)
    except RankingUnavailable as exc:
        return Standing(target, domain, None, settings.cutoff, str(settings.path), problem=exc.reason)
    rank = ranking.rank_of_host(host)[1] if domain and host else None
    return Standing(target, domain, rank, settings.cutoff, str(settings.path))


def write_ranking(rows: list[tuple[int, str]], path: Path) -> int:
    """Write ``rank,domain`` lines atomically (refresh); returns the number written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for rank, domain in rows:
            handle.write(f"{rank},{domain}\n")
    tmp.replace(path)
    return len(rows)
