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

from lab.clock import now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, invalid, not_found

TOOL = "firewall"
COLLECTIONS = ("egress",)
router = APIRouter(prefix="/firewall", tags=["firewall"], route_class=LabRoute)


def normalise(value: str) -> str:
    value = value.strip()
    try:
        if "/" in value:
            return str(ipaddress.ip_network(value, strict=True))
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise invalid(f"'{value}' is not a valid IP address or network.") from exc


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
