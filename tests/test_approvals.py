"""Who may decide a waiting step: the rules the workflow applies to every decision signal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from handrail.gate.approvals import ApprovalBook
from handrail.gate.decisions import change_digest
from handrail.gate.models import (
    Approver,
    Change,
    GatePolicy,
    Mode,
    RunState,
    RunStatus,
    StepRecord,
    StepState,
)
from tests.support import make_decision, public_line

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 1, tzinfo=UTC)
USERS = {"alice": ["soc-analyst"], "bob": ["soc-analyst"], "erin": ["soc-analyst"], "carol": ["soc-lead"],
         "dave": []}


def book_with_step(required: int = 1, excluded: tuple[str, ...] = ()) -> tuple[ApprovalBook, StepRecord]:
    book = ApprovalBook()
    book.status = RunStatus(run_id="r", runbook="t", state=RunState.AWAITING_APPROVAL, requested_by="alice",
                            subject="x", started_at=NOW)
    step = StepRecord(step_id="s01-x", change=Change(kind="x", target="t"), state=StepState.AWAITING_APPROVAL,
                      mode=Mode.APPROVE, started_at=NOW)
    step.change_digest = change_digest(step)
    book.status.steps.append(step)
    policy = GatePolicy(kind="x", mode=Mode.APPROVE, approvers=Approver(roles=["soc-analyst"]),
                        escalate_to=Approver(roles=["soc-lead"]), required_approvals=required, user_roles=USERS,
                        user_keys={user: [public_line(user)] for user in USERS})
    book.open(step, policy, excluded)
    return book, step


def decide(book, who: str, approve: bool = True, step: str | None = None, reason: str = "r", **signing):
    """A decision signed by `who`'s test key, received at NOW."""
    return book.receive(make_decision(who, approve, step, reason, book.status, issued_at=NOW, **signing), NOW)


def test_requester_unknown_and_roleless_people_are_refused():
    book, step = book_with_step()
    assert "separation of duties" in decide(book, "alice").why
    assert "no key for mallory in the policy" in decide(book, "mallory").why
    assert "dave may not decide" in decide(book, "dave").why
    assert "the signature is for step s09, this run waits on s01-x" in decide(book, "bob", step="s09").why
    assert not book.decided(step) and len(book.status.rejected_decisions) == 4


def test_the_person_a_guardrail_run_is_about_is_told_so_not_that_they_requested_it():
    book, step = book_with_step()
    book.status.summary["started_by"] = "bob"  # privilege guard: requester alice is the affected user
    record = decide(book, "alice")
    assert not record.accepted and "requested this run" not in record.why
    assert "alice is the person this run is about (started by bob)" in record.why
    assert "separation of duties" in record.why


def test_excluded_deciders_are_refused_even_with_the_right_role():
    book, step = book_with_step(excluded=("bob",))
    record = decide(book, "bob")
    assert not record.accepted and "made the change under review" in record.why
    assert decide(book, "erin").accepted and book.decided(step)


def test_n_of_m_counts_people_once_and_one_denial_ends_it():
    book, step = book_with_step(required=2)
    assert decide(book, "bob").accepted
    assert "already decided" in decide(book, "bob").why
    assert not book.decided(step)
    assert decide(book, "erin").accepted and book.close(step).approved

    book, step = book_with_step(required=2)
    assert not decide(book, "bob", approve=False, reason=" ").accepted  # a denial needs a reason
    assert decide(book, "bob", approve=False, reason="our VPN").accepted
    outcome = book.close(step)
    assert not outcome.approved and outcome.deciders == ["bob"] and outcome.reason == "our VPN"


def test_escalation_opens_the_step_to_the_lead():
    book, step = book_with_step()
    assert not decide(book, "carol").accepted
    book.escalate(step)
    assert decide(book, "carol").accepted and book.decided(step)
