"""Takedown: the brand-protection provider that gets malicious sites taken down.

Routes:
- `POST /takedown/submissions` `{"url", "reason", "evidence": [{"kind", "ref",
  "description"?}]}` -> 201 `{"id": "TKD-000001", "url", "domain", "reason", "evidence",
  "status": "submitted", "submitted_at"}`; 409 if that URL is already submitted; 422 if
  `url` is not an http(s) URL or a bare domain.
- `GET /takedown/submissions` -> `{"submissions": [...]}`.
- `GET /takedown/submissions/{id}` -> the submission, 404.
- `DELETE /takedown/submissions/{id}` -> `{"withdrawn": id}` (withdraw: the provider
  forgets it), 404.

The URL is evidence, not a destination: the lab never contacts it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from fastapi import APIRouter
from pydantic import BaseModel, Field

from lab.clock import now_iso
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, invalid, not_found

TOOL = "takedown"
COLLECTIONS = ("submissions",)
router = APIRouter(prefix="/takedown", tags=["takedown"], route_class=LabRoute)

_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9_-]{1,63}\.)+[a-z0-9-]{2,63}$")


def seed(world, store) -> dict:
    return {"submissions": {}}


class EvidenceIn(BaseModel):
    kind: str = Field(min_length=1)
    ref: str = Field(min_length=1)
    description: str = ""


class SubmissionIn(BaseModel):
    url: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    evidence: list[EvidenceIn] = Field(default_factory=list)


def _domain(url: str) -> str:
    u = url.strip()
    if "://" in u:
        parts = urlsplit(u)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise invalid(f"'{url}' is not an http(s) URL or a domain.")
    else:
        host = u.lower().rstrip(".")
    if not _HOST.match(host):
        raise invalid(f"'{url}' is not an http(s) URL or a domain.")
    return host


@router.post("/submissions", status_code=201)
async def submit(body: SubmissionIn, store: StoreDep) -> dict:
    domain = _domain(body.url)
    url = body.url.strip()
    for s in store.all(TOOL, "submissions"):
        if s["url"] == url:
            raise conflict(f"{url} is already submitted as {s['id']}.", "already_submitted")
    with store.batch():
        sid = f"TKD-{store.next_id('takedown'):06d}"
        doc = {"id": sid, "url": url, "domain": domain, "reason": body.reason,
               "evidence": [e.model_dump() for e in body.evidence], "status": "submitted",
               "submitted_at": now_iso()}
        store.put(TOOL, "submissions", sid, doc)
    return doc


@router.get("/submissions")
async def list_submissions(store: StoreDep) -> dict:
    return {"submissions": store.all(TOOL, "submissions")}


@router.get("/submissions/{sub_id}")
async def get_submission(sub_id: str, store: StoreDep) -> dict:
    doc = store.get(TOOL, "submissions", sub_id)
    if doc is None:
        raise not_found(f"There is no takedown submission {sub_id}.")
    return doc


@router.delete("/submissions/{sub_id}")
async def withdraw(sub_id: str, store: StoreDep) -> dict:
    if not store.delete(TOOL, "submissions", sub_id):
        raise not_found(f"There is no takedown submission {sub_id}.")
    return {"withdrawn": sub_id}
