"""Notifications: the lab's sink for what Handrail tells approvers (a stand-in for chat or e-mail).

Routes:
- `POST /notifications` `{"channel", "event", "run_id", "step_id", "kind", "target", "recipients",
  "text", "approve_command"?, "deny_command"?, "show_command"?, "deadline"?, "outcome"?, "why"?}`
  -> 201 the record with `id` (`NTF-000001`) and `received_at`.
- `GET /notifications?run_id=` -> `{"notifications": [...]}` oldest first (tool token).
- `GET /_lab/notifications?run_id=` -> the same for the admin token (`handrail lab list notifications`).

A sink, not a tool: it is kept out of the estate's state and hash (`/_lab/state`), so a
notice never makes a run look as if it changed a security tool; `POST /_lab/reset` clears it.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from lab.clock import now_iso
from lab.deps import LabRoute, StoreDep

TOOL, COLLECTION = "notifications", "notifications"
router = APIRouter(prefix="/notifications", tags=["notifications"], route_class=LabRoute)
admin_router = APIRouter(prefix="/_lab/notifications", tags=["lab"], route_class=LabRoute)


class NotificationIn(BaseModel):
    channel: str = Field(min_length=1, max_length=40)
    event: Literal["waiting", "escalated", "approved", "denied", "timed_out"]
    run_id: str = Field(min_length=1, max_length=512)
    step_id: str = Field(min_length=1, max_length=512)
    kind: str = Field(min_length=1, max_length=200)
    target: str = Field(max_length=2000)
    recipients: list[str] = Field(default_factory=list, max_length=500)
    text: str = Field(max_length=20_000)
    approve_command: str | None = Field(default=None, max_length=2000)
    deny_command: str | None = Field(default=None, max_length=2000)
    show_command: str | None = Field(default=None, max_length=2000)
    deadline: str | None = None
    outcome: str | None = Field(default=None, max_length=4000)
    why: str | None = Field(default=None, max_length=4000)


@router.post("", status_code=201)
async def record(body: NotificationIn, store: StoreDep) -> dict:
    notification_id = f"NTF-{store.next_id('notifications'):06d}"
    doc = {"id": notification_id, **body.model_dump(), "received_at": now_iso()}
    store.put(TOOL, COLLECTION, notification_id, doc)
    return doc


def _listing(store, run_id: str | None) -> dict:
    found = store.all(TOOL, COLLECTION)
    if run_id is not None:
        found = [n for n in found if n["run_id"] == run_id]
    return {"notifications": sorted(found, key=lambda n: n["id"])}


@router.get("")
async def list_notifications(store: StoreDep, run_id: str | None = None) -> dict:
    return _listing(store, run_id)


@admin_router.get("")
async def list_for_admin(store: StoreDep, run_id: str | None = None) -> dict:
    return _listing(store, run_id)
