"""Who may roll a run back, and what a rollback would undo: pure rules, no I/O.

Undoing a change is a change: each inverse goes through the step gate under its own
kind's policy. Before any of that, the person asking must be allowed to roll back that
runbook (`[settings.rollback]` in the policy), and must not be someone the run acted
against: its requester (for the guardrail runbooks, the affected user) or anyone the run
excluded from deciding on it (e.g. whoever granted the privilege a run reverted). The
activity gathers the facts (ledger, policy); the workflow judges them with `refusal`.

    [settings.rollback]
    allowed = { roles = ["soc-analyst", "soc-lead"] }      # every runbook
    runbooks = { "privilege-guard" = { roles = ["soc-lead"] } }   # per runbook, replaces `allowed`

Without the table, any policy user holding a role may roll back.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handrail.gate.models import Approver, ChangeRecord


class RollbackSettingsError(ValueError):
    """`[settings.rollback]` is unusable; one sentence naming the problem."""


class RollbackRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allowed: Approver | None = None
    runbooks: dict[str, Approver] = Field(default_factory=dict)


def rollback_rules(policy) -> RollbackRules:
    """Parse and check `[settings.rollback]` against the policy's users and roles."""
    try:
        rules = RollbackRules.model_validate(policy.settings.get("rollback") or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise RollbackSettingsError(f"settings.rollback.{where}: {err['msg']}.") from None
    roles = {role for user in policy.users.values() for role in user.roles}
    groups = [("allowed", rules.allowed)] + [(f"runbooks.{name}", g) for name, g in rules.runbooks.items()]
    for label, group in groups:
        if group is None:
            continue
        for user in group.users:
            if user not in policy.users:
                raise RollbackSettingsError(f"settings.rollback.{label} names unknown user {user!r}.")
        for role in group.roles:
            if role not in roles:
                raise RollbackSettingsError(f"settings.rollback.{label} names role {role!r} that no user has.")
    return rules


def check_policy(policy) -> RollbackRules:
    """`handrail policy check`'s hook (raises RollbackSettingsError, a ValueError)."""
    return rollback_rules(policy)


def allowed_for(policy, runbook: str) -> Approver:
    rules = rollback_rules(policy)
    if runbook in rules.runbooks:
        return rules.runbooks[runbook]
    if rules.allowed is not None:
        return rules.allowed
    return Approver(roles=sorted({role for user in policy.users.values() for role in user.roles}))


def parties_from_audit(rows: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """(runbook, the people the run acted against) from its audit: requester(s) and excluded deciders."""
    runbook, parties = "?", []
    for row in rows:
        data = row.get("data") or {}
        if row["event"] == "run.started":
            runbook = data.get("runbook", runbook)
            parties.append(data.get("requested_by"))
        elif row["event"] == "run.requester_set":
            parties.append(data.get("requested_by"))
        elif row["event"] == "step.requested":
            parties.extend(data.get("excluded_deciders") or [])
    return runbook, sorted({p for p in parties if isinstance(p, str) and p})


class RollbackItem(BaseModel):
    """One change of the run, newest first: its verified record, or why it cannot be trusted."""

    change_id: str
    record: ChangeRecord | None = None
    untrusted: str = ""
    # forecast by the plan: another run still relies on the change's state, so undoing it would
    # keep the tool as it is (`handrail.gate.holders`); the revert decides when it runs
    kept_by_run: str = ""
    kept_by_change: str = ""


class RollbackPlanRequest(BaseModel):
    run_id: str


class RollbackPlan(BaseModel):
    run_id: str
    runbook: str
    known: bool  # the ledger knows the run at all
    parties: list[str] = Field(default_factory=list)
    allowed: Approver = Field(default_factory=Approver)
    user_roles: dict[str, list[str]] = Field(default_factory=dict)
    items: list[RollbackItem] = Field(default_factory=list)
    policy_error: str = ""

    def to_undo(self) -> list[RollbackItem]:
        """Items a rollback acts on: untrusted ones (to refuse loudly) and live changes with an inverse."""
        return [i for i in self.items if i.untrusted or (
            i.record is not None and i.record.inverse is not None and i.record.reverted_at is None)]


def refusal(who: str, plan: RollbackPlan) -> str | None:
    """Why `who` may not roll back this run, or None when they may."""
    if plan.policy_error:
        return plan.policy_error
    if not plan.known:
        return f"no run {plan.run_id} is in the ledger, so there is nothing to roll back"
    if who in plan.parties:
        return (f"{who} is a party to run {plan.run_id} (its requester, the person it is about, or someone "
                "excluded from deciding it) and can never roll it back (separation of duties)")
    if who not in plan.user_roles:
        return f"{who} is not a user in the policy and cannot roll back runs"
    roles = set(plan.user_roles.get(who, []))
    if who not in plan.allowed.users and not roles & set(plan.allowed.roles):
        allowed = ", ".join([f"role {r}" for r in plan.allowed.roles] + [f"user {u}" for u in plan.allowed.users])
        return f"{who} may not roll back {plan.runbook} runs (allowed: {allowed or 'nobody'})"
    return None
