"""Deterministic guardrails: pure functions from (change, options, context) to a verdict.

They run inside workflow code, so they may not do I/O, read clocks or look anything up:
everything they need (protected networks, allowlists, recent counts, derived thresholds)
arrives in a `GuardrailContext` gathered by an activity. The same inputs always give the
same verdicts, which is what makes a replayed run and an audited decision agree.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from handrail.gate import canon
from handrail.gate.models import Change, GuardrailContext, Outcome, Verdict

_SEVERITY = {Outcome.ALLOW: 0, Outcome.HOLD: 1, Outcome.DENY: 2}


def as_network(target: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The target as exactly one network (an address is a /32 or /128), or None."""
    try:
        return canon.parse_one_network(target)
    except canon.TargetError:
        return None


# Kinds whose targets can only be addresses: anything else there is refused outright.
IP_ONLY_PREFIXES = ("firewall.",)


def _ip_target(change: Change, guardrail: str, options: dict[str, Any]) -> tuple[Any, Verdict | None]:
    """The network a target stands for (fail closed), or a deny saying why it cannot be read.

    ``set:<sha256>`` batch targets return ``"set"``: they are judged on the member check
    the gate's context activity made (``ctx.set_check``). A URL is judged by its IP host and
    must be spelt canonically (:func:`canon.read_web_target`), as must a name that a browser
    reads as an address (``161.71.0x5.5``). A name (a domain on ``proxy.block``) returns
    None: not an address, nothing to check.
    """
    target = change.target

    def deny(reason: str) -> tuple[None, Verdict]:
        return None, Verdict(guardrail=guardrail, outcome=Outcome.DENY, reason=reason, alert=True)

    if target.startswith("set:"):
        return "set", None
    ip_only = bool(options.get("ip_only", change.kind.startswith(IP_ONLY_PREFIXES)))
    if ip_only or canon.looks_like_ip(target) or any(
            ch.isspace() or ch in ",;|" or unicodedata.category(ch)[0] == "C" for ch in target):
        try:
            return canon.parse_one_network(target), None
        except canon.TargetError as exc:
            return deny(f"{exc.reason}; refused rather than guessed")
    if canon.looks_like_url(target) or canon.legacy_ipv4(target):
        try:  # one spelling only: http://0xa1.0x47.5.5./ is the CRM to a browser
            return canon.read_web_target(target).network, None
        except canon.TargetError as exc:
            return deny(f"{exc.reason}; refused rather than guessed")
    return None, None


def _set_verdict(change: Change, ctx: GuardrailContext, guardrail: str,
                 options: dict[str, Any], hits_of: str) -> Verdict | None:
    """A batch target passes only with a member check of exactly this set that found nothing."""
    sha = change.target.removeprefix("set:")
    check = ctx.set_check
    outcome = Outcome(options.get("outcome", "deny"))
    if check is None or check.sha256 != sha or check.error:
        why = check.error if check is not None and check.error else "its members were not checked"
        return Verdict(guardrail=guardrail, outcome=Outcome.DENY, alert=True,
                       reason=f"the batch {change.target[:16]}… cannot be cleared: {why}")
    hits = {"protected": check.protected_hits, "special": check.special_hits,
            "allowlist": check.allowlist_hits}[hits_of]
    if not hits:
        return None
    shown = "; ".join(hits[:5]) + (f" and {len(hits) - 5} more" if len(hits) > 5 else "")
    return Verdict(guardrail=guardrail, outcome=outcome, alert=hits_of != "special",
                   reason=f"{len(hits)} of the {check.members} members of the batch are refused: {shown}")


def never_block(
    change: Change, options: dict[str, Any], ctx: GuardrailContext,
    read: Callable[[Change, str, dict[str, Any]], tuple[Any, Verdict | None]] = _ip_target,
) -> Verdict | None:
    """Deny anything that overlaps a protected network, in either family (an IPv4-mapped,
    NAT64, 6to4 or Teredo form of a protected address counts), or a network covering it.
    `read` is how the target is read (another only for `evaluate_unrecorded`)."""
    net, refused = read(change, "never_block", options)
    if refused or net is None:
        return refused
    if net == "set":
        return _set_verdict(change, ctx, "never_block", options, "protected")
    for name, cidr in ctx.protected:
        protected = ipaddress.ip_network(cidr)
        how_met = canon.overlaps(net, protected)
        if how_met:
            how = "is inside" if canon.contains(protected, net) else "overlaps"
            via = "" if how_met == "directly" else f" ({how_met})"
            return Verdict(
                guardrail="never_block",
                outcome=Outcome(options.get("outcome", "deny")),
                reason=f"{change.target} {how} the protected network {name} ({cidr}){via}",
                alert=True,
            )
    return None


SPECIAL_SPACE: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = [
    (label, ipaddress.ip_network(cidr))
    for label, cidrs in {
        "private": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
        "shared (CGNAT)": ["100.64.0.0/10"],
        "loopback": ["127.0.0.0/8", "::1/128"],
        "link-local": ["169.254.0.0/16", "fe80::/10"],
        "multicast": ["224.0.0.0/4", "ff00::/8"],
        "reserved": ["0.0.0.0/8", "240.0.0.0/4", "::/128"],
    }.items()
    for cidr in cidrs
]


def no_reserved_space(
    change: Change, options: dict[str, Any], ctx: GuardrailContext,
    read: Callable[[Change, str, dict[str, Any]], tuple[Any, Verdict | None]] = _ip_target,
) -> Verdict | None:
    """Deny blocking private, shared, loopback, link-local, multicast or reserved space.

    Overlap, not containment: 0.0.0.0/0 or 8.0.0.0/4 would take internal space down too,
    and so would ``::ffff:0:0/96`` or ``64:ff9b::/96``, which embed all of IPv4.
    Documentation ranges (TEST-NET) are not special here: blocking them harms nothing.
    `read` is how the target is read (another only for `evaluate_unrecorded`).
    """
    net, refused = read(change, "no_reserved_space", options)
    if refused or net is None:
        return refused
    if net == "set":
        return _set_verdict(change, ctx, "no_reserved_space", options, "special")
    for label, special in SPECIAL_SPACE:
        how_met = canon.overlaps(net, special)
        if how_met:
            how = "is" if canon.contains(special, net) else "overlaps"
            via = "" if how_met == "directly" else f" ({how_met})"
            return Verdict(
                guardrail="no_reserved_space",
                outcome=Outcome(options.get("outcome", "deny")),
                reason=f"{change.target} {how} {label} address space ({special}){via}",
            )
    return None


def never_touch(change: Change, options: dict[str, Any], ctx: GuardrailContext) -> Verdict | None:
    """Deny changes to a listed name or any name under it (corp.example covers a.corp.example),
    to a page (URL) on one, or to a name that covers one (a sinkhole of ``example`` takes
    ``corp.example`` with it).

    Both sides are compared in canonical form (NFKC, IDNA/UTS 46, lower case, no trailing
    dot or zero-width characters): ``ｇｏｏｇｌｅ.com`` and ``google。com`` are google.com.
    A URL must be spelt canonically, or it is refused: ``https://sales%66orce.com/`` is
    salesforce.com to a browser. A ``set:<sha256>`` batch is judged on its members
    (``ctx.set_check``, checked against every name the kind's never_touch guardrails list),
    like the IP guardrails judge it; an allowlisted member refuses the batch and alerts.
    """
    if change.target.startswith("set:"):
        return _set_verdict(change, ctx, "never_touch", options, "allowlist")
    outcome = Outcome(options.get("outcome", "deny"))
    alert = bool(options.get("alert", False))
    if "://" in change.target:
        try:
            target = canon.read_web_target(change.target).host
        except canon.TargetError as exc:
            return Verdict(guardrail="never_touch", outcome=Outcome.DENY, alert=alert,
                           reason=f"{exc.reason}; refused rather than guessed")
    else:
        target = canon.canonical_domain(change.target)
    for raw in list(options.get("values", [])) + ctx.allowlist:
        entry = canon.canonical_domain(raw)
        if not entry or not target:
            continue
        if target == entry or target.endswith("." + entry):
            why = f"is on the allowlist ({entry})"
        elif entry.endswith("." + target):
            why = f"covers {entry}, which is on the allowlist"
        else:
            continue
        return Verdict(guardrail="never_touch", outcome=outcome, alert=alert, reason=f"{change.target} {why}")
    return None


_SUFFIX_OWNERS = {
    "icann": "a registry's public suffix: every site registered under it",
    "private": "a platform's public suffix: every customer's site under it",
    "reserved": "a reserved top-level name: every name under it",
}


def canonical_target(change: Change, options: dict[str, Any], ctx: GuardrailContext) -> Verdict | None:
    """Deny a name or URL target that is not one site's name in its one canonical spelling.

    A proxy, a resolver and a browser each read ``salesforce.com:443``, ``*.com``,
    ``http:\\\\salesforce.com`` or ``https://sales%66orce.com/`` their own way, and not always
    as the guardrails do; only the canonical spelling (:func:`canon.read_web_target`) means
    the same host to all of them. A name that is itself a public suffix (``co.uk``,
    ``github.io``; the fact ``ctx.target_suffix`` is gathered by the check) names everyone
    registered under it, not a site. Addresses and networks are read by ``never_block``;
    batches are checked member by member.
    """
    if change.target.startswith("set:") or as_network(change.target) is not None:
        return None
    outcome = Outcome(options.get("outcome", "deny"))
    try:
        canon.read_web_target(change.target)
    except canon.TargetError as exc:
        return Verdict(guardrail="canonical_target", outcome=outcome, reason=exc.reason)
    if ctx.target_suffix:
        owners = _SUFFIX_OWNERS.get(ctx.target_suffix, "a public suffix: every site under it")
        return Verdict(guardrail="canonical_target", outcome=outcome,
                       reason=f"{change.target} is {owners} would be blocked; name the site instead")
    return None


def _threshold(name: str, static: float, ctx: GuardrailContext) -> tuple[float, str]:
    if name in ctx.thresholds:
        return ctx.thresholds[name], ctx.threshold_sources.get(name, "baseline")
    return float(static), "static"


def rate_limit(change: Change, options: dict[str, Any], ctx: GuardrailContext) -> Verdict | None:
    """Hold when this change would exceed the hourly count across all runs (blast radius)."""
    limit, source = _threshold("rate_limit", options.get("per_hour", 100), ctx)
    if ctx.recent_count_hour + 1 > limit:
        return Verdict(
            guardrail="rate_limit",
            outcome=Outcome(options.get("outcome", "hold")),
            reason=(
                f"{ctx.recent_count_hour} {change.kind} changes in the last hour; "
                f"one more exceeds the limit of {limit:g} per hour"
            ),
            threshold=limit,
            threshold_source=source,
        )
    return None


def per_run_limit(change: Change, options: dict[str, Any], ctx: GuardrailContext) -> Verdict | None:
    """Hold when one run asks for more changes of a kind than usual (e.g. 40 domains in one email)."""
    limit, source = _threshold("per_run_limit", options.get("per_run", 20), ctx)
    if ctx.recent_count_run + 1 > limit:
        return Verdict(
            guardrail="per_run_limit",
            outcome=Outcome(options.get("outcome", "hold")),
            reason=f"this run already made {ctx.recent_count_run} {change.kind} changes; the limit is {limit:g}",
            threshold=limit,
            threshold_source=source,
        )
    return None


def protected_tags(change: Change, options: dict[str, Any], ctx: GuardrailContext) -> Verdict | None:
    """Hold (or deny) a change to a target the CMDB tags as production or executive."""
    hit = sorted(set(options.get("tags", [])) & set(ctx.target_tags))
    if hit:
        return Verdict(
            guardrail="protected_tags",
            outcome=Outcome(options.get("outcome", "hold")),
            reason=f"{change.target} is tagged {', '.join(hit)}",
        )
    return None


def max_batch(change: Change, options: dict[str, Any], ctx: GuardrailContext) -> Verdict | None:
    """Hold a batch change (target ``set:<sha256>``) whose size, ``params["count"]``, exceeds
    ``max`` (static, default 5000) — the intel sync's volume check. ``params["feeds"]`` names
    the feeds contributing most, so the reason says which feed caused the hold."""
    count = change.params.get("count")
    if not isinstance(count, (int, float)) or isinstance(count, bool):
        return None
    limit, source = _threshold("max_batch", options.get("max", 5000), ctx)
    if count > limit:
        feeds = change.params.get("feeds")
        return Verdict(
            guardrail="max_batch",
            outcome=Outcome(options.get("outcome", "hold")),
            reason=f"{count:g} {change.kind} entries in one change exceed the limit of {limit:g}"
            + (f"; most from {feeds}" if feeds else ""),
            threshold=limit,
            threshold_source=source,
        )
    return None


def popular_domain(change: Change, options: dict[str, Any], ctx: GuardrailContext) -> Verdict | None:
    """Hold a change to a popular site (inside the top-sites cut-off), in every trust mode.

    Phishing mail links to the services a company runs on; sinkholing one takes the
    company down. Fails safe: when the list cannot be read, every such change holds.
    The facts (rank, cut-off, list, problem) are gathered by the check_step activity.
    """
    fact = ctx.popularity
    outcome = Outcome(options.get("outcome", "hold"))
    if not fact:
        return Verdict(guardrail="popular_domain", outcome=outcome,
                       reason=f"no top-sites standing was gathered for {change.target}: a human decides")
    if fact.get("problem"):
        return Verdict(guardrail="popular_domain", outcome=outcome,
                       reason=f"{fact['problem']}: without it every {change.kind} waits for a human")
    rank, cutoff = fact.get("rank"), fact.get("cutoff")
    if rank is not None and cutoff is not None and rank <= cutoff:
        return Verdict(guardrail="popular_domain", outcome=outcome,
                       reason=f"{fact.get('domain')} is rank {rank:,} in the top-sites list ({fact.get('source')}), "
                              f"inside the cut-off {cutoff:,}: never automatic",
                       threshold=float(cutoff), threshold_source="static")
    return None


_CONFIDENCE = {"low": 0, "medium": 1, "high": 2}


def confidence(change: Change, options: dict[str, Any], ctx: GuardrailContext) -> Verdict | None:
    """Hold a change its runbook is not sure enough about: ``params["confidence"]`` below
    ``at_least`` (default high). Changes that carry no confidence are not this guardrail's
    business. The runbook's evidence (``params["evidence"]``) goes into the reason."""
    level = change.params.get("confidence")
    if level is None:
        return None
    needed = str(options.get("at_least", "high"))
    if _CONFIDENCE.get(str(level), 0) >= _CONFIDENCE.get(needed, 2):
        return None
    evidence = str(change.params.get("evidence") or "")
    return Verdict(
        guardrail="confidence",
        outcome=Outcome(options.get("outcome", "hold")),
        reason=f"the runbook's confidence in {change.target} is {level}, {needed} is needed to act alone"
               + (f" (evidence: {evidence})" if evidence else ""),
    )


GUARDRAILS: dict[str, Callable[[Change, dict[str, Any], GuardrailContext], Verdict | None]] = {
    "never_block": never_block,
    "no_reserved_space": no_reserved_space,
    "never_touch": never_touch,
    "canonical_target": canonical_target,
    "rate_limit": rate_limit,
    "per_run_limit": per_run_limit,
    "protected_tags": protected_tags,
    "max_batch": max_batch,
    "popular_domain": popular_domain,
    "confidence": confidence,
}


def change_freeze(change: Change, ctx: GuardrailContext) -> Verdict | None:
    """Hold every change while a policy `[[freeze]]` window is in force, whatever its mode."""
    if not ctx.freeze:
        return None
    return Verdict(guardrail="change_freeze", outcome=Outcome.HOLD,
                   reason=f"a change freeze is in force ({ctx.freeze}): every change needs a human")


def evaluate(change: Change, ctx: GuardrailContext) -> list[Verdict]:
    """Run every guardrail configured for the change's kind, then the freeze (which applies to
    every kind); only the ones that object speak."""
    return _evaluate(GUARDRAILS, change, ctx)


def _evaluate(table: dict[str, Callable[[Change, dict[str, Any], GuardrailContext], Verdict | None]],
              change: Change, ctx: GuardrailContext) -> list[Verdict]:
    verdicts = []
    for options in ctx.guardrails:
        verdict = table[options["type"]](change, options, ctx)
        if verdict is not None:
            verdicts.append(verdict)
    frozen = change_freeze(change, ctx)
    if frozen is not None:
        verdicts.append(frozen)
    return verdicts


def overall(verdicts: list[Verdict]) -> Outcome:
    """The strictest verdict wins: one deny beats any number of holds."""
    return max((v.outcome for v in verdicts), key=_SEVERITY.__getitem__, default=Outcome.ALLOW)


# -- checks that recorded no verdicts ---------------------------------------------------------
# A step's check records the guardrails' verdicts in the run's history since 22098cd. A check
# recorded before carries none, and the workflow evaluates the guardrails itself, again on
# every replay: they must then say what they said when the run ran, or the run's commands
# differ (a sinkhole bob approved is refused on replay; a verdict's reason changes the digest
# his signature names) and the run fails as nondeterministic. Until 11298c5 ("one spelling
# for a web target") never_touch saw only the listed name and names under it, and the IP
# guardrails read a URL's host as `urlsplit` does, whatever its spelling; the rest reads
# targets as it did (canonical_target came with 11298c5 and reads as it did then).


def _ip_target_before_one_spelling(change: Change, guardrail: str,
                                   options: dict[str, Any]) -> tuple[Any, Verdict | None]:
    """`_ip_target` as 3ae8ef3 read it: a URL by its host as `urlsplit` reads it (a legacy
    IPv4 spelling too), never refused for how it is spelt; a bare name is no address."""
    target = change.target

    def deny(reason: str) -> tuple[None, Verdict]:
        return None, Verdict(guardrail=guardrail, outcome=Outcome.DENY, reason=reason, alert=True)

    if target.startswith("set:"):
        return "set", None
    ip_only = bool(options.get("ip_only", change.kind.startswith(IP_ONLY_PREFIXES)))
    if ip_only or canon.looks_like_ip(target) or any(
            ch.isspace() or ch in ",;|" or unicodedata.category(ch)[0] == "C" for ch in target):
        try:
            return canon.parse_one_network(target), None
        except canon.TargetError as exc:
            return deny(f"{exc.reason}; refused rather than guessed")
    if "://" in target:
        try:
            host = urlsplit(target).hostname or ""
        except ValueError:
            return deny(f"the target {target[:60]!r} is not a readable URL; refused rather than guessed")
        try:
            return canon.parse_one_network(host), None
        except canon.TargetError:
            legacy = canon.legacy_ipv4(host)  # http://2705786117/ is 161.71.5.5 to a browser
            return (ipaddress.ip_network(legacy), None) if legacy else (None, None)
    return None, None


def _never_block_before_one_spelling(change: Change, options: dict[str, Any],
                                     ctx: GuardrailContext) -> Verdict | None:
    return never_block(change, options, ctx, read=_ip_target_before_one_spelling)


def _no_reserved_space_before_one_spelling(change: Change, options: dict[str, Any],
                                           ctx: GuardrailContext) -> Verdict | None:
    return no_reserved_space(change, options, ctx, read=_ip_target_before_one_spelling)


def _never_touch_before_one_spelling(change: Change, options: dict[str, Any],
                                     ctx: GuardrailContext) -> Verdict | None:
    """`never_touch` as 3ae8ef3 read it: the listed name or a name under it, compared in
    canonical form; a name covering a listed one, a URL or a batch was not refused."""
    target = canon.canonical_domain(change.target)
    for raw in list(options.get("values", [])) + ctx.allowlist:
        entry = canon.canonical_domain(raw)
        if entry and (target == entry or target.endswith("." + entry)):
            return Verdict(
                guardrail="never_touch",
                outcome=Outcome(options.get("outcome", "deny")),
                reason=f"{change.target} is on the allowlist ({entry})",
                alert=bool(options.get("alert", False)),
            )
    return None


GUARDRAILS_BEFORE_ONE_SPELLING: dict[str, Callable[[Change, dict[str, Any], GuardrailContext], Verdict | None]] = {
    **GUARDRAILS,
    "never_block": _never_block_before_one_spelling,
    "no_reserved_space": _no_reserved_space_before_one_spelling,
    "never_touch": _never_touch_before_one_spelling,
}


def evaluate_unrecorded(change: Change, ctx: GuardrailContext) -> list[Verdict]:
    """The verdicts of a check that recorded none (a worker before 22098cd), as its release
    gave them. Which release that was shows in the context the check recorded (every field
    is recorded, so a field its release did not have is absent): a `target_suffix`
    (c4dbfd2 on) or a `canonical_target` guardrail (the shipped policy from 11298c5 on) means
    targets were read in one spelling, as now; any other context was read as before 11298c5."""
    if "target_suffix" in ctx.model_fields_set or any(g.get("type") == "canonical_target" for g in ctx.guardrails):
        return evaluate(change, ctx)
    return _evaluate(GUARDRAILS_BEFORE_ONE_SPELLING, change, ctx)
