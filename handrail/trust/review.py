"""Keeping close tabs: the automated changes made since the last human review.

Changes made in mode `logged` or `guarded` ran without anyone approving them. `pending`
lists those applied after the last `review.marked` audit event (or after `since`); a
guarded change a guardrail held and a person approved is not among them (someone already
looked). `mark` records a `review.marked` event naming who reviewed, the period and every
change id covered, so the next review starts where this one ended. Nobody reviews changes
of runs they requested themselves: the mark is refused, naming them, for someone else.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from handrail.gate.ledger import Ledger, iso
from handrail.gate.models import AuditEvent
from handrail.gate.policy import Policy
from handrail.trust import attest

REVIEW_RUN_ID = "review"


class ReviewError(ValueError):
    """A review mark was refused; the message is one sentence."""


class ReviewItem(BaseModel):
    change_id: str
    run_id: str
    kind: str
    target: str
    mode: str
    status: str | None = None
    requested_by: str | None = None
    applied_at: datetime
    expires_at: datetime | None = None
    reverted: str | None = None  # "rollback by bob at …" when undone since


class LastReview(BaseModel):
    at: datetime
    by: str
    until: datetime
    count: int


class ReviewList(BaseModel):
    since: datetime | None = None
    until: datetime
    last_review: LastReview | None = None
    changes: list[ReviewItem] = Field(default_factory=list)


def last_review(ledger: Ledger) -> LastReview | None:
    rows = ledger.query("REVIEW_LAST")
    if not rows:
        return None
    at, body = rows[0]
    data = json.loads(body).get("data", {})
    return LastReview(at=datetime.fromisoformat(at), by=data.get("by", "?"),
                      until=datetime.fromisoformat(data["until"]), count=int(data.get("count", 0)))


def pending(ledger: Ledger, now: datetime, since: datetime | None = None) -> ReviewList:
    """Automated changes applied after `since` (default: the end of the last review) up to `now`."""
    previous = last_review(ledger)
    start = since if since is not None else (previous.until if previous else None)
    rows = [row[:-1] for row in ledger.query("REVIEW_PENDING", [iso(start) if start else "", iso(now)])
            if not _approved(row[-1])]
    items = [
        ReviewItem(
            change_id=cid, run_id=run, kind=kind, target=target, mode=mode, status=status,
            requested_by=requested_by, applied_at=datetime.fromisoformat(applied),
            expires_at=datetime.fromisoformat(expires) if expires else None,
            reverted=f"{reason} by {by} at {at}" if reason else None,
        )
        for cid, run, kind, target, mode, status, requested_by, applied, expires, reason, by, at in rows
    ]
    return ReviewList(since=start, until=now, last_review=previous, changes=items)


def _approved(approved_by) -> bool:
    """Whether a person approved the change (a guarded change a guardrail held)."""
    if isinstance(approved_by, str):
        try:
            approved_by = json.loads(approved_by)
        except ValueError:
            return False
    return bool(approved_by)


def mark(ledger: Ledger, policy: Policy, by: str, now: datetime,
         since: datetime | None = None, *, sign: attest.Signer) -> tuple[ReviewList, str]:
    """Record that `by` reviewed every automated change listed now; returns the list and event id.

    `by` is the policy user whose key `sign` signs with (the CLI proves it); they must be
    someone the policy trusts with approvals, and the event carries their signature."""
    try:
        attest.check_authority(policy, by, None)
    except attest.AttestError as exc:
        raise ReviewError(str(exc)) from None
    listing = pending(ledger, now, since)
    own = sorted({c.run_id for c in listing.changes if c.requested_by == by})
    if own:
        shown = ", ".join(own[:5]) + (f" and {len(own) - 5} more" if len(own) > 5 else "")
        raise ReviewError(f"{by} requested runs whose changes this review covers ({shown}); someone else reviews "
                          "them (separation of duties)")
    data = {"by": by, "since": iso(listing.since) if listing.since else None, "until": iso(listing.until),
            "count": len(listing.changes), "change_ids": [c.change_id for c in listing.changes]}
    try:
        data = attest.sign_event(policy, by, "review.marked", data, sign)
    except attest.AttestError as exc:
        raise ReviewError(str(exc)) from None
    event = AuditEvent(id=f"review:{uuid.uuid4().hex}", at=now, run_id=REVIEW_RUN_ID, event="review.marked",
                       data=data)
    ledger.append([event])
    return listing, event.id
