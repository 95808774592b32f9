"""The gate's judgement of one step, from the facts its check gathered.

Two places judge a step: the workflow (every step, for its status and its branch: refuse,
ask a human, apply) and the check-and-apply activity (which applies at once only when no
human has to decide). Both call `judge`, so they cannot disagree. Pure and deterministic.

The guardrails themselves run in the check activity, which returns their verdicts with
the facts (`StepCheck.verdicts`): the verdicts are then part of the run's history, so a
worker upgraded to guardrails that read a target differently replays a run waiting days
for its approver exactly as it ran, instead of failing it as nondeterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handrail.gate import guardrails
from handrail.gate.models import Change, Mode, Outcome, StepCheck, Verdict


@dataclass(frozen=True)
class Judgement:
    verdicts: list[Verdict]
    outcome: Outcome
    mode: Mode
    thresholds: dict[str, str]  # name -> "value (source)", as people read them

    @property
    def refused(self) -> bool:
        return self.outcome == Outcome.DENY

    @property
    def needs_human(self) -> bool:
        """Approve mode asks for every change; a guardrail that holds asks in any mode."""
        return not self.refused and (self.mode == Mode.APPROVE or self.outcome == Outcome.HOLD)

    @property
    def goes_alone(self) -> bool:
        """The gate applies the change without a person: nothing refuses it and nothing holds it."""
        return not self.refused and not self.needs_human

    def why_ask(self) -> str:
        if self.mode == Mode.APPROVE:
            return "policy mode is approve"
        return "a guardrail holds it: " + "; ".join(v.reason for v in self.verdicts if v.outcome == Outcome.HOLD)

    def why_refused(self) -> str:
        return "; ".join(v.reason for v in self.verdicts if v.outcome == Outcome.DENY)

    def audit_data(self, kind: str) -> dict[str, Any]:
        """The `guardrails.evaluated` audit event's data."""
        return {"kind": kind, "mode": self.mode.value, "outcome": self.outcome.value,
                "verdicts": [v.model_dump() for v in self.verdicts], "thresholds": self.thresholds}


def judge(change: Change, check: StepCheck) -> Judgement:
    """The step's judgement: from the verdicts the check recorded, or (a check recorded
    before checks carried them) from the guardrails evaluated here, as they read then."""
    context = check.context
    verdicts = check.verdicts if check.verdicts is not None else guardrails.evaluate_unrecorded(change, context)
    return Judgement(
        verdicts=verdicts,
        outcome=guardrails.overall(verdicts),
        mode=check.policy.mode,
        thresholds={
            name: f"{value:g} ({context.threshold_sources.get(name, 'baseline')})"
            for name, value in context.thresholds.items()
        },
    )
