"""Proxy: the SaaS web proxy every user's traffic goes through.

An indicator is a domain, URL or IP. Its status is `blocked` if on the blocklist,
otherwise `monitored` if tightened (extra logging / packet capture), otherwise
`allowed` — unknown indicators are simply allowed, never 404.

Routes:
- `GET /proxy/indicators` -> `{"indicators": [...]}` (only those with a policy).
- `GET /proxy/indicators/{value}` -> `{"value", "status", "blocked": bool, "block":
  null | {"comment", "at"}, "tightened": bool, "logging": "normal|extra",
  "packet_capture": bool}` (URL-encode values containing `/`).
- `POST /proxy/blocks` `{"value", "comment"?}` -> 201 indicator; 409 if already blocked.
- `DELETE /proxy/blocks/{value}` -> indicator; 404 if not blocked.
- `POST /proxy/tightened` `{"value", "logging": "extra", "packet_capture": true}` -> 201
  indicator; 409 if already tightened.
- `DELETE /proxy/tightened/{value}` -> indicator (relax); 404 if not tightened.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from handrail.gate.canon import canonical_domain
from lab.clock import now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, invalid, not_found

TOOL = "proxy"
COLLECTIONS = ("policies",)
router = APIRouter(prefix="/proxy", tags=["proxy"], route_class=LabRoute)


def normalise(value: str) -> str:
    v = value.strip()
    if not v or any(c.isspace() for c in v) or len(v) > 2048:
        raise invalid(f"'{value}' is not a domain, URL or IP address.")
    if "://" in v:
        scheme, rest = v.split("://", 1)
        host, sep, path = rest.partition("/")
        return f"{scheme.lower()}://{host.lower()}{sep}{path}"
    return canonical_domain(v)  # the gate's reading: ｇｏｏｇｌｅ.com is google.com


def seed(world, store) -> dict:
    policies = {
        "free-gift-cards-corp.com": {"value": "free-gift-cards-corp.com",
                                     "block": {"comment": "Gift card scam", "at": seed_time(600)},
                                     "tightening": None},
        "paste-exfil-drop.net": {"value": "paste-exfil-drop.net",
                                 "block": {"comment": "Exfil paste site", "at": seed_time(90)},
                                 "tightening": None},
        "wetransfer.com": {"value": "wetransfer.com", "block": None,
                           "tightening": {"logging": "extra", "packet_capture": False,
                                          "at": seed_time(300)}},
    }
    return {"policies": policies}


def view(value: str, doc: dict | None) -> dict:
    block = doc["block"] if doc else None
    tight = doc["tightening"] if doc else None
    status = "blocked" if block else ("monitored" if tight else "allowed")
    return {"value": value, "status": status, "blocked": block is not None, "block": block,
            "tightened": tight is not None,
            "logging": tight["logging"] if tight else "normal",
            "packet_capture": bool(tight and tight["packet_capture"])}


def _save(store, value: str, doc: dict) -> None:
    if doc["block"] is None and doc["tightening"] is None:
        store.delete(TOOL, "policies", value)
    else:
        store.put(TOOL, "policies", value, doc)


class BlockIn(BaseModel):
    value: str = Field(min_length=1)
    comment: str = ""


class TightenIn(BaseModel):
    value: str = Field(min_length=1)
    logging: Literal["normal", "extra"] = "extra"
    packet_capture: bool = True


@router.get("/indicators")
async def list_indicators(store: StoreDep) -> dict:
    return {"indicators": [view(d["value"], d) for d in store.all(TOOL, "policies")]}


@router.get("/indicators/{value:path}")
async def get_indicator(value: str, store: StoreDep) -> dict:
    v = normalise(value)
    return view(v, store.get(TOOL, "policies", v))


@router.post("/blocks", status_code=201)
async def block(body: BlockIn, store: StoreDep) -> dict:
    v = normalise(body.value)
    doc = store.get(TOOL, "policies", v) or {"value": v, "block": None, "tightening": None}
    if doc["block"] is not None:
        raise conflict(f"{v} is already blocked on the proxy.", "already_blocked")
    doc["block"] = {"comment": body.comment, "at": now_iso()}
    _save(store, v, doc)
    return view(v, doc)


@router.delete("/blocks/{value:path}")
async def unblock(value: str, store: StoreDep) -> dict:
    v = normalise(value)
    doc = store.get(TOOL, "policies", v)
    if doc is None or doc["block"] is None:
        raise not_found(f"{v} is not blocked on the proxy.")
    doc["block"] = None
    _save(store, v, doc)
    return view(v, doc if doc["tightening"] else None)


@router.post("/tightened", status_code=201)
async def tighten(body: TightenIn, store: StoreDep) -> dict:
    v = normalise(body.value)
    doc = store.get(TOOL, "policies", v) or {"value": v, "block": None, "tightening": None}
    if doc["tightening"] is not None:
        raise conflict(f"{v} is already under tightened monitoring.", "already_tightened")
    doc["tightening"] = {"logging": body.logging, "packet_capture": body.packet_capture,
                         "at": now_iso()}
    _save(store, v, doc)
    return view(v, doc)


@router.delete("/tightened/{value:path}")
async def relax(value: str, store: StoreDep) -> dict:
    v = normalise(value)
    doc = store.get(TOOL, "policies", v)
    if doc is None or doc["tightening"] is None:
        raise not_found(f"{v} is not under tightened monitoring.")
    doc["tightening"] = None
    _save(store, v, doc)
    return view(v, doc if doc["block"] else None)


# -- bulk (the intel sync changes thousands of indicators per run) ----------------------
# `POST /proxy/bulk/status` `{"values": [...]}` -> `{"blocked": [...], "tightened": [...]}`
# (the given values that are blocked / tightened); `POST /proxy/bulk/block` `{"values",
# "comment"}` and `POST /proxy/bulk/tighten` `{"values", "logging", "packet_capture"}` ->
# `{"added": [...], "already": [...]}`; `POST /proxy/bulk/unblock` and
# `POST /proxy/bulk/relax` `{"values"}` -> `{"removed": [...], "absent": [...]}`.
# At most BULK_MAX values per request; one invalid value refuses the whole request (422).
BULK_MAX = 10_000


class BulkIn(BaseModel):
    values: list[str] = Field(max_length=BULK_MAX)
    comment: str = ""
    logging: Literal["normal", "extra"] = "extra"
    packet_capture: bool = True


def _bulk_norm(values: list[str]) -> list[tuple[str, str]]:
    return [(v, normalise(v)) for v in values]


@router.post("/bulk/status")
async def bulk_status(body: BulkIn, store: StoreDep) -> dict:
    blocked, tightened = [], []
    for given, v in _bulk_norm(body.values):
        doc = store.get(TOOL, "policies", v)
        if doc and doc["block"] is not None:
            blocked.append(given)
        if doc and doc["tightening"] is not None:
            tightened.append(given)
    return {"blocked": blocked, "tightened": tightened}


def _bulk_set(store, values: list[str], field: str, value: dict | None) -> dict:
    pairs = _bulk_norm(values)
    done, other = [], []
    rows = []
    with store.batch():
        for given, v in pairs:
            doc = store.get(TOOL, "policies", v) or {"value": v, "block": None, "tightening": None}
            if (doc[field] is None) == (value is None):
                other.append(given)
                continue
            doc[field] = value
            done.append(given)
            if doc["block"] is None and doc["tightening"] is None:
                store.delete(TOOL, "policies", v)
            else:
                rows.append((TOOL, "policies", v, doc))
        if rows:
            store.put_many(rows)
    return {"added": done, "already": other} if value is not None else {"removed": done, "absent": other}


@router.post("/bulk/block")
async def bulk_block(body: BulkIn, store: StoreDep) -> dict:
    return _bulk_set(store, body.values, "block", {"comment": body.comment, "at": now_iso()})


@router.post("/bulk/unblock")
async def bulk_unblock(body: BulkIn, store: StoreDep) -> dict:
    return _bulk_set(store, body.values, "block", None)


@router.post("/bulk/tighten")
async def bulk_tighten(body: BulkIn, store: StoreDep) -> dict:
    return _bulk_set(store, body.values, "tightening", {
        "logging": body.logging, "packet_capture": body.packet_capture, "at": now_iso()})


@router.post("/bulk/relax")
async def bulk_relax(body: BulkIn, store: StoreDep) -> dict:
    return _bulk_set(store, body.values, "tightening", None)
