"""Cases: the incident case-management system.

Routes:
- `POST /cases` `{"title", "description"?, "severity"?: "low|medium|high|critical",
  "run_id"?}` -> 201 case `{"id": "CASE-0001", "title", "description", "severity",
  "status": "open", "run_id", "created_at", "artefacts": [], "notes": [], "closure": null}`.
- `GET /cases` -> `{"cases": [...]}`; `?status=open|closed`, `?run_id=`.
- `GET /cases/{id}` -> the case, 404.
- `POST /cases/{id}/artefacts` `{"kind", "ref", "description"?}` -> 201 artefact
  `{"id": "CASE-0001-A1", "kind", "ref", "description", "added_at"}`.
- `DELETE /cases/{id}/artefacts/{artefact_id}` -> `{"removed": artefact_id}`, 404.
- `POST /cases/{id}/notes` `{"author", "text"}` -> 201 note `{"id", "author", "text", "at"}`.
- `POST /cases/{id}/close` `{"resolution"}` -> the case; 409 if closed.
- `POST /cases/{id}/reopen` -> the case; 409 if open.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from lab.clock import now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, invalid, not_found

TOOL = "cases"
COLLECTIONS = ("cases",)
router = APIRouter(prefix="/cases", tags=["cases"], route_class=LabRoute)


def seed(world, store) -> dict:
    cases = {
        "CASE-0001": {"id": "CASE-0001", "title": "INC-2291 C2 beacon from srv-app-01",
                      "description": "Beacon to 45.142.212.61 blocked at the firewall.",
                      "severity": "high", "status": "closed", "run_id": None,
                      "created_at": seed_time(410), "artefacts": [],
                      "notes": [{"id": "CASE-0001-N1", "author": "bob",
                                 "text": "Host reimaged.", "at": seed_time(380)}],
                      "closure": {"resolution": "remediated", "at": seed_time(370)}},
        "CASE-0002": {"id": "CASE-0002", "title": "Departing employee monitoring: kharris",
                      "description": "HR notified a resignation; watchlist added.",
                      "severity": "medium", "status": "open", "run_id": None,
                      "created_at": seed_time(96), "artefacts": [], "notes": [],
                      "closure": None},
    }
    store.set_counter("cases", len(cases))
    return {"cases": cases}


class CaseIn(BaseModel):
    title: str = Field(min_length=1)
    description: str = ""
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    run_id: str | None = None


class ArtefactIn(BaseModel):
    kind: str = Field(min_length=1)
    ref: str = Field(min_length=1)
    description: str = ""


class NoteIn(BaseModel):
    author: str = Field(min_length=1)
    text: str = Field(min_length=1)


class CloseIn(BaseModel):
    resolution: str = Field(min_length=1)


def _get(store, case_id: str) -> dict:
    doc = store.get(TOOL, "cases", case_id)
    if doc is None:
        raise not_found(f"There is no case {case_id}.")
    return doc


def _next(items: list[dict], prefix: str) -> str:
    n = max((int(i["id"].rsplit(prefix, 1)[1]) for i in items), default=0) + 1
    return f"{prefix}{n}"


@router.post("", status_code=201)
async def create(body: CaseIn, store: StoreDep) -> dict:
    with store.batch():
        cid = f"CASE-{store.next_id('cases'):04d}"
        doc = {"id": cid, **body.model_dump(), "status": "open", "created_at": now_iso(),
               "artefacts": [], "notes": [], "closure": None}
        store.put(TOOL, "cases", cid, doc)
    return doc


@router.get("")
async def list_cases(store: StoreDep, status: str | None = None,
                     run_id: str | None = None) -> dict:
    if status not in (None, "open", "closed"):
        raise invalid("status must be 'open' or 'closed'.")
    cases = store.all(TOOL, "cases")
    return {"cases": [c for c in cases if (status is None or c["status"] == status)
                      and (run_id is None or c["run_id"] == run_id)]}


@router.get("/{case_id}")
async def get_case(case_id: str, store: StoreDep) -> dict:
    return _get(store, case_id)


@router.post("/{case_id}/artefacts", status_code=201)
async def add_artefact(case_id: str, body: ArtefactIn, store: StoreDep) -> dict:
    doc = _get(store, case_id)
    art = {"id": _next(doc["artefacts"], f"{case_id}-A"), **body.model_dump(),
           "added_at": now_iso()}
    doc["artefacts"].append(art)
    store.put(TOOL, "cases", case_id, doc)
    return art


@router.delete("/{case_id}/artefacts/{artefact_id}")
async def remove_artefact(case_id: str, artefact_id: str, store: StoreDep) -> dict:
    doc = _get(store, case_id)
    kept = [a for a in doc["artefacts"] if a["id"] != artefact_id]
    if len(kept) == len(doc["artefacts"]):
        raise not_found(f"Case {case_id} has no artefact {artefact_id}.")
    doc["artefacts"] = kept
    store.put(TOOL, "cases", case_id, doc)
    return {"removed": artefact_id}


@router.post("/{case_id}/notes", status_code=201)
async def add_note(case_id: str, body: NoteIn, store: StoreDep) -> dict:
    doc = _get(store, case_id)
    note = {"id": _next(doc["notes"], f"{case_id}-N"), **body.model_dump(), "at": now_iso()}
    doc["notes"].append(note)
    store.put(TOOL, "cases", case_id, doc)
    return note


@router.post("/{case_id}/close")
async def close(case_id: str, body: CloseIn, store: StoreDep) -> dict:
    doc = _get(store, case_id)
    if doc["status"] == "closed":
        raise conflict(f"Case {case_id} is already closed.", "already_closed")
    doc.update(status="closed", closure={"resolution": body.resolution, "at": now_iso()})
    store.put(TOOL, "cases", case_id, doc)
    return doc


@router.post("/{case_id}/reopen")
async def reopen(case_id: str, store: StoreDep) -> dict:
    doc = _get(store, case_id)
    if doc["status"] != "closed":
        raise conflict(f"Case {case_id} is open.", "not_closed")
    doc.update(status="open", closure=None)
    store.put(TOOL, "cases", case_id, doc)
    return doc
