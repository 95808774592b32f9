"""Firewall: the egress blocklist that perimeter firewalls poll as an external dynamic list.

Routes:
- `GET /firewall/egress` -> `{"entries": [{"value", "comment", "added_at"}]}` sorted by value.
- `GET /firewall/egress/{value}` -> the entry, 404 if absent (CIDRs URL-encoded, `%2F`).
- `POST /firewall/egress` `{"value", "comment"}` -> 201 entry; 409 if present; 422 if the
  value is not an IPv4/IPv6 address or network (`ipaddress`, strict: host bits must be 0).
- `DELETE /firewall/egress/{value}` -> `{"removed": value}`, 404 if absent.
- `GET /firewall/edl.txt` -> text/plain, one entry per line, sorted.

Values are normalised (`2001:DB8::1` -> `2001:db8::1`); an address is stored without a
prefix length, a network with one.
"""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from handrail.gate.canon import parse_one_network
from lab.clock import now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, invalid, not_found

TOOL = "firewall"
COLLECTIONS = ("egress",)
router = APIRouter(prefix="/firewall", tags=["firewall"], route_class=LabRoute)


def normalise(value: str) -> str:
    value = value.strip()
    try:
        parse_one_network(value)  # the gate's reading: exactly one address or network
        if "/" in value:
            return str(ipaddress.ip_network(value, strict=True))
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise invalid(f"{value[:60]!r} is not a valid IP address or network.") from exc


def seed(world, store) -> dict:
    entries = {
        "45.142.212.61": ("Blocked after incident INC-2291 (C2 beacon)", 400),
        "91.92.240.0/22": ("Bulletproof hosting range, intel feed lab-drop", 300),
        "185.220.101.7": ("Credential stuffing source", 120),
    }
    return {"egress": {v: {"value": v, "comment": c, "added_at": seed_time(h)}
                       for v, (c, h) in entries.items()}}


class EgressIn(BaseModel):
    value: str
    comment: str = ""


@router.get("/egress")
async def list_egress(store: StoreDep) -> dict:
    return {"entries": store.all(TOOL, "egress")}


@router.get("/egress/{value:path}")
async def get_egress(value: str, store: StoreDep) -> dict:
    entry = store.get(TOOL, "egress", normalise(value))
    if entry is None:
        raise not_found(f"{value} is not on the egress blocklist.")
    return entry


@router.post("/egress", status_code=201)
async def add_egress(body: EgressIn, store: StoreDep) -> dict:
    value = normalise(body.value)
    if store.get(TOOL, "egress", value) is not None:
        raise conflict(f"{value} is already on the egress blocklist.", "already_present")
    entry = {"value": value, "comment": body.comment, "added_at": now_iso()}
    store.put(TOOL, "egress", value, entry)
    return entry


@router.delete("/egress/{value:path}")
async def remove_egress(value: str, store: StoreDep) -> dict:
    norm = normalise(value)
    if not store.delete(TOOL, "egress", norm):
        raise not_found(f"{value} is not on the egress blocklist.")
    return {"removed": norm}


@router.get("/edl.txt", response_class=PlainTextResponse)
async def edl(store: StoreDep) -> str:
    values = store.keys(TOOL, "egress")
    return "".join(f"{v}\n" for v in values)


# -- bulk (the intel sync changes thousands of entries per run) -------------------------
# `POST /firewall/egress-bulk/lookup` `{"values"}` -> `{"present": [...]}` (given values on
# the list); `POST /firewall/egress-bulk/add` `{"values", "comment"}` -> `{"added",
# "already"}`; `POST /firewall/egress-bulk/remove` `{"values"}` -> `{"removed", "absent"}`.
# At most BULK_MAX values; one invalid value refuses the whole request (422).
BULK_MAX = 10_000


class EgressBulkIn(BaseModel):
    values: list[str]
    comment: str = ""


def _bulk_norm(values: list[str]) -> list[tuple[str, str]]:
    if len(values) > BULK_MAX:
        raise invalid(f"At most {BULK_MAX} values per bulk request.")
    return [(v, normalise(v)) for v in values]


@router.post("/egress-bulk/lookup")
async def bulk_lookup(body: EgressBulkIn, store: StoreDep) -> dict:
    return {"present": [g for g, v in _bulk_norm(body.values)
                        if store.get(TOOL, "egress", v) is not None]}


@router.post("/egress-bulk/add")
async def bulk_add(body: EgressBulkIn, store: StoreDep) -> dict:
    added, already, rows, at = [], [], [], now_iso()
    seen: set[str] = set()
    for given, v in _bulk_norm(body.values):
        if v in seen or store.get(TOOL, "egress", v) is not None:
            already.append(given)
            continue
        seen.add(v)
        added.append(given)
        rows.append((TOOL, "egress", v, {"value": v, "comment": body.comment, "added_at": at}))
    if rows:
        store.put_many(rows)
    return {"added": added, "already": already}


@router.post("/egress-bulk/remove")
async def bulk_remove(body: EgressBulkIn, store: StoreDep) -> dict:
    removed, absent = [], []
    pairs = _bulk_norm(body.values)
    with store.batch():
        for given, v in pairs:
            (removed if store.delete(TOOL, "egress", v) else absent).append(given)
    return {"removed": removed, "absent": absent}
