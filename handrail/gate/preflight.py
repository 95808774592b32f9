"""Refuse early what the run would refuse: the pure half of the pre-flight check.

A run started on an unknown alert, or on a change a guardrail will deny whatever the
live state, takes its id for good and tells the person only later, in `show`. The
pre-flight check answers before anything starts: does the trigger exist, and do the
guardrails that need no live state (protected networks, reserved space, never-touch
lists) already refuse the change? Live guardrails (rates, CMDB tags) stay in the gate.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from handrail.gate import canon, guardrails
from handrail.gate.models import Change, GuardrailContext, Outcome

STATIC_GUARDRAILS = {"never_block", "no_reserved_space", "never_touch", "canonical_target"}


class PreflightRequest(BaseModel):
    """What a run would start from: its planned changes and the trigger records it reads."""

    runbook: str
    changes: list[Change] = Field(default_factory=list)
    dlp_alert: str | None = None
    iam_event: str | None = None
    nac_mac: str | None = None


class PreflightResult(BaseModel):
    refusals: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals


def static_refusals(policy, changes: list[Change]) -> list[str]:
    """The denials the policy's live-state-free guardrails give each change."""
    out: list[str] = []
    for change in changes:
        configured = [g for g in policy.guardrails_for(change.kind) if g.get("type") in STATIC_GUARDRAILS]
        allowlist: list[str] = []
        for options in configured:
            if options.get("allowlist"):
                allowlist.extend(policy.allowlists.get(options["allowlist"], []))
        ctx = GuardrailContext(protected=policy.protected(), allowlist=allowlist, guardrails=configured,
                               target_suffix=target_suffix(change.target, configured))
        for verdict in guardrails.evaluate(change, ctx):
            if verdict.outcome == Outcome.DENY:
                out.append(f"guardrail {verdict.guardrail} denies {change.describe()}: {verdict.reason}")
    return out


def target_suffix(target: str, guardrails: list[dict[str, Any]]) -> str | None:
    """The `target_suffix` fact, gathered when a `canonical_target` guardrail reads it (the
    public-suffix list loads once per process, off the workflow: the verdict replays from
    the recorded fact, whatever list a later release ships)."""
    if not any(g.get("type") == "canonical_target" for g in guardrails):
        return None
    # a bare host name only: a URL blocks one page, not a suffix; addresses and batches have none
    if target.startswith("set:") or canon.looks_like_url(target) or target != target.strip().lower():
        return None
    from handrail.suffixes import suffix_section  # the list is loaded only where it is asked for

    return suffix_section(target)


def lookup_hint(what: str) -> str:
    """Where a person finds valid inputs of this kind."""
    tool = {"dlp": "dlp", "iam": "iam", "nac": "nac", "mailbox": "mailbox"}[what]
    return f"`handrail lab list {tool}` lists them"


def summary(result: PreflightResult) -> dict[str, Any]:
    return {"ok": result.ok, "refusals": result.refusals}
