"""Deterministic guardrails: pure functions from (change, options, context) to a verdict.

They run inside workflow code, so they may not do I/O, read clocks or look anything up:
everything they need (protected networks, allowlists, recent counts, derived thresholds)
arrives in a `GuardrailContext` gathered by an activity. The same inputs always give the
same verdicts, which is what makes a replayed run and an audited decision agree.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from handrail.gate.models import Change, GuardrailContext, Outcome, Verdict

_SEVERITY = {Outcome.ALLOW: 0, Outcome.HOLD: 1, Outcome.DENY: 2}


def as_network(target: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The target as a network (an address is a /32 or /128), or None for non-IP targets."""
    try:
        return ipaddress.ip_network(target.strip(), strict=False)
    except ValueError:
        return None


def never_block(change: Change, options: dict[str, Any], ctx: GuardrailContext) -> Verdict | None:
    """Deny anything that overlaps a protected network, including a network covering it."""
    net = as_network(change.target)
    if net is None:
        return None
    for name, cidr in ctx.protected:
        protected = ipaddress.ip_network(cidr)
        if net.version == protected.version and net.overlaps(protected):
            how = "is inside" if net.subnet_of(protected) else "overlaps"
            return Verdict(
                guardrail="never_block",
                outcome=Outcome(options.get("outcome", "deny")),
                reason=f"{change.target} {how} the protected network {name} ({cidr})",
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


def no_reserved_space(change: Change, options: dict[str, Any], ctx: GuardrailContext) -> Verdict | None:
    """Deny blocking private, shared, loopback, link-local, multicast or reserved space.

    Overlap, not containment: 0.0.0.0/0 or 8.0.0.0/4 would take internal space down too.
    Documentation ranges (TEST-NET) are not special here: blocking them harms nothing.
    """
    net = as_network(change.target)
    if net is None:
        return None
    for label, special in SPECIAL_SPACE:
        if net.version == special.version and net.overlaps(special):
            how = "is" if net.subnet_of(special) else "overlaps"
            return Verdict(
                guardrail="no_reserved_space",
                outcome=Outcome(options.get("outcome", "deny")),
                reason=f"{change.target} {how} {label} address space ({special})",
            )
    return None


def never_touch(change: Change, options: dict[str, Any], ctx: GuardrailContext) -> Verdict | None:
    """Deny changes to a listed name or any name under it (corp.example covers a.corp.example)."""
    target = change.target.strip().lower().rstrip(".")
    listed = [v.lower().rstrip(".") for v in list(options.get("values", [])) + ctx.allowlist]
    for entry in listed:
        if target == entry or target.endswith("." + entry):
            return Verdict(
                guardrail="never_touch",
                outcome=Outcome(options.get("outcome", "deny")),
                reason=f"{change.target} is on the allowlist ({entry})",
                alert=bool(options.get("alert", False)),
            )
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


GUARDRAILS: dict[str, Callable[[Change, dict[str, Any], GuardrailContext], Verdict | None]] = {
    "never_block": never_block,
    "no_reserved_space": no_reserved_space,
    "never_touch": never_touch,
    "rate_limit": rate_limit,
    "per_run_limit": per_run_limit,
    "protected_tags": protected_tags,
    "max_batch": max_batch,
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
    verdicts = []
    for options in ctx.guardrails:
        verdict = GUARDRAILS[options["type"]](change, options, ctx)
        if verdict is not None:
            verdicts.append(verdict)
    frozen = change_freeze(change, ctx)
    if frozen is not None:
        verdicts.append(frozen)
    return verdicts


def overall(verdicts: list[Verdict]) -> Outcome:
    """The strictest verdict wins: one deny beats any number of holds."""
    return max((v.outcome for v in verdicts), key=_SEVERITY.__getitem__, default=Outcome.ALLOW)
