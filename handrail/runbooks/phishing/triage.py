"""Judge a raw message the way a run would: the policy's settings, the top-sites list, the
brands, then `verdict.judge`. Shared by the parse activity and `handrail phishing triage`,
so the dry run and the real run can never disagree.

Everything here is blocking (file reads, parsing): call it from a thread in async code.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from handrail.gate.policy import load_policy
from handrail.runbooks.phishing.intel_named import named_by_intel
from handrail.runbooks.phishing.lookalike import Brands
from handrail.runbooks.phishing.mail import ParsedMessage, parse_message
from handrail.runbooks.phishing.popular import PopularSettings, Ranking, RankingUnavailable, load_ranking
from handrail.runbooks.phishing.verdict import Judgement, VerdictSettings, brands_for, judge


@dataclass(frozen=True)
class JudgeContext:
    """What judging needs besides the message: thresholds, the ranking (or why none), brands."""

    settings: VerdictSettings
    popular: PopularSettings
    ranking: Ranking | None
    problem: str | None
    brands: Brands
    intel: frozenset[str] = frozenset()  # names and IPs the intel sync blocks now


_brands_cache: dict[tuple, Brands] = {}
_lock = threading.Lock()


def load_context(policy_path: Path, home: Path, intel=None) -> JudgeContext:
    """Read the policy and the top-sites list (cached while the files do not change).

    ``intel``: the installation's intel sync state and store (anything with ``.state`` and
    ``.store``, e.g. the worker's ``IntelContext``); None reads ``home``'s files read-only."""
    policy = load_policy(policy_path)
    popular = PopularSettings.from_policy(policy.settings, home, policy_path.parent)
    settings = VerdictSettings.from_policy(policy.settings, policy.allowlists.get("domains", []))
    try:
        ranking, problem = load_ranking(popular.path), None
    except RankingUnavailable as exc:
        ranking, problem = None, exc.reason
    key = (id(ranking), settings.brands_top, settings.brands, settings.allowlist)
    with _lock:
        brands = _brands_cache.get(key)
    if brands is None:
        brands = brands_for(ranking, settings)
        with _lock:
            _brands_cache.clear()
            _brands_cache[key] = brands
    if intel is not None:
        intel = named_by_intel(intel.state, intel.store)
    else:
        intel = named_by_intel(home / "intel.db", home / "store")
    return JudgeContext(settings, popular, ranking, problem, brands, intel)


class Triage(BaseModel):
    """One message judged: its parse and its verdicts."""

    mail: ParsedMessage
    judgement: Judgement


def triage(raw: bytes, context: JudgeContext) -> Triage:
    """Parse and judge a raw message (raises MalformedMessage for what is not an e-mail)."""
    mail = parse_message(raw)
    return Triage(mail=mail, judgement=judge(mail, context.ranking, context.settings, context.brands,
                                             ranking_problem=context.problem, intel=context.intel))
