"""DNS: the internal resolver's sinkhole (response-policy zone).

A sinkholed domain (and every name under it) resolves to an internal address — by
default the security-awareness page at 10.20.0.80. Nothing here ever performs a real DNS
lookup: names that are not sinkholed get a deterministic fake public address.

Routes:
- `GET /dns/sinkholes` -> `{"sinkholes": [{"domain", "address", "comment", "added_at"}]}`.
- `GET /dns/sinkholes/{domain}` -> the entry, 404.
- `POST /dns/sinkholes` `{"domain", "address"?, "comment"?}` -> 201; 409 if present;
  422 if the domain or address is malformed.
- `DELETE /dns/sinkholes/{domain}` -> `{"removed": domain}`, 404.
- `GET /dns/resolve/{name}` -> `{"name", "addresses": [...], "sinkholed": bool,
  "sinkhole": domain | null}`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from fastapi import APIRouter
from pydantic import BaseModel

from handrail.gate.canon import canonical_domain
from lab.clock import now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, invalid, not_found
from lab.seed import SINKHOLE_ADDRESS

TOOL = "dns"
COLLECTIONS = ("sinkholes",)
router = APIRouter(prefix="/dns", tags=["dns"], route_class=LabRoute)

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_FAKE_FIRST_OCTETS = (23, 37, 45, 62, 77, 85, 91, 104, 151, 176, 185, 193, 212, 217)


def normalise_domain(domain: str) -> str:
    d = canonical_domain(domain)  # the gate's reading: ｇｏｏｇｌｅ.com is google.com
    labels = d.split(".")
    if len(d) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise invalid(f"'{domain}' is not a valid domain name.")
    try:
        ipaddress.ip_address(d)
    except ValueError:
        return d
    raise invalid(f"'{domain}' is an IP address, not a domain name.")


def fake_address(name: str) -> str:
    h = hashlib.sha256(name.encode()).digest()
    first = _FAKE_FIRST_OCTETS[h[0] % len(_FAKE_FIRST_OCTETS)]
    return f"{first}.{h[1]}.{h[2]}.{1 + h[3] % 254}"


def seed(world, store) -> dict:
    entries = {
        "login-corp-example-sso.com": ("Credential phishing kit, INC-2214", 500),
        "invoices-portal-docs.net": ("Invoice lure domain, INC-2260", 200),
    }
    return {"sinkholes": {d: {"domain": d, "address": SINKHOLE_ADDRESS, "comment": c,
                              "added_at": seed_time(h)} for d, (c, h) in entries.items()}}


class SinkholeIn(BaseModel):
    domain: str
    address: str = SINKHOLE_ADDRESS
    comment: str = ""


@router.get("/sinkholes")
async def list_sinkholes(store: StoreDep) -> dict:
    return {"sinkholes": store.all(TOOL, "sinkholes")}


@router.get("/sinkholes/{domain}")
async def get_sinkhole(domain: str, store: StoreDep) -> dict:
    entry = store.get(TOOL, "sinkholes", normalise_domain(domain))
    if entry is None:
        raise not_found(f"{domain} is not sinkholed.")
    return entry


@router.post("/sinkholes", status_code=201)
async def add_sinkhole(body: SinkholeIn, store: StoreDep) -> dict:
    domain = normalise_domain(body.domain)
    try:
        address = str(ipaddress.ip_address(body.address.strip()))
    except ValueError as exc:
        raise invalid(f"'{body.address}' is not a valid IP address.") from exc
    if store.get(TOOL, "sinkholes", domain) is not None:
        raise conflict(f"{domain} is already sinkholed.", "already_present")
    entry = {"domain": domain, "address": address, "comment": body.comment,
             "added_at": now_iso()}
    store.put(TOOL, "sinkholes", domain, entry)
    return entry


@router.delete("/sinkholes/{domain}")
async def remove_sinkhole(domain: str, store: StoreDep) -> dict:
    d = normalise_domain(domain)
    if not store.delete(TOOL, "sinkholes", d):
        raise not_found(f"{domain} is not sinkholed.")
    return {"removed": d}


@router.get("/resolve/{name}")
async def resolve(name: str, store: StoreDep) -> dict:
    n = normalise_domain(name)
    labels = n.split(".")
    for i in range(len(labels) - 1):
        entry = store.get(TOOL, "sinkholes", ".".join(labels[i:]))
        if entry is not None:
            return {"name": n, "addresses": [entry["address"]], "sinkholed": True,
                    "sinkhole": entry["domain"]}
    return {"name": n, "addresses": [fake_address(n)], "sinkholed": False, "sinkhole": None}
