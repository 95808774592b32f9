"""The lab's own routes, under `/_lab` (never subject to faults, never in the call log).

- `GET /_lab/health` -> `{"ok": true}` (no auth).
- `GET /_lab/state` -> `{"hash", "tools": {tool: {collection: {key: doc}}}, "counts"}`;
  the hash is the sha256 of the canonical JSON of `tools` and changes exactly when the
  estate changes. `?counts_only=true` leaves `tools` out.
- `GET /_lab/calls?limit=N` -> `{"calls": [{"method", "path", "idempotency_key",
  "status", "at"}]}`, newest last.
- `POST /_lab/reset` -> reload the seed; clears calls, idempotency keys and faults.
- `POST /_lab/faults` (see `lab.faults.FaultSpec`) -> 201 the rule; `GET /_lab/faults`;
  `DELETE /_lab/faults` clears all rules.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from lab import calls
from lab.deps import LabRoute, StoreDep
from lab.faults import FaultSpec
from lab.registry import counts, estate, seed_all

router = APIRouter(prefix="/_lab", tags=["lab"], route_class=LabRoute)


@router.get("/health")
async def health() -> dict:
    return {"ok": True}


@router.get("/state")
async def state(store: StoreDep, counts_only: bool = False) -> dict:
    tools, digest = estate(store)
    out = {"hash": digest, "counts": counts(tools)}
    if not counts_only:
        out["tools"] = tools
    return out


@router.get("/calls")
async def list_calls(store: StoreDep, limit: int = Query(100, ge=1, le=100_000)) -> dict:
    return {"calls": calls.recent(store, limit)}


@router.post("/reset")
async def reset(request: Request, store: StoreDep) -> dict:
    seed_all(store)
    request.app.state.faults.reload()
    _, digest = estate(store)
    return {"ok": True, "hash": digest}


@router.get("/faults")
async def list_faults(request: Request) -> dict:
    return {"faults": [r.public() for r in request.app.state.faults.rules]}


@router.post("/faults", status_code=201)
async def add_fault(spec: FaultSpec, request: Request) -> dict:
    return request.app.state.faults.add(spec).public()


@router.delete("/faults")
async def clear_faults(request: Request) -> dict:
    book = request.app.state.faults
    n = len(book.rules)
    book.clear()
    return {"cleared": n}
