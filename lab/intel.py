"""Intel: threat-intelligence feeds served in their real formats, as a feed server would.

Routes:
- `GET /intel/feeds` -> `{"feeds": [{"name", "format": "ipset|netset|csv|stix",
  "description", "sha256", "size", "lines"}]}`.
- `GET /intel/feeds/{name}` -> the raw feed body (text/plain, text/csv or
  application/json for STIX 2.1 bundles) with an `ETag` of its sha256; 404.
- `GET /intel/feeds/{name}/info` -> the feed's listing entry.
- `PUT /intel/feeds/{name}?format=ipset|netset|csv|stix` (raw body) -> 201 when the feed
  is new, 200 when its content is replaced. The body is not validated: tests publish
  faulty updates on purpose. `format` defaults to the feed's current format.
- `DELETE /intel/feeds/{name}` -> `{"removed": name}`, 404.

Bodies live in the content-addressed blob table; the estate (and its hash) records only
each feed's sha256 and size, so a tens-of-megabytes feed costs nothing to hash.
"""

from __future__ import annotations

import hashlib
import json
import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from lab.deps import LabRoute, StoreDep
from lab.errors import invalid, not_found
from lab.seed import PLANTED

TOOL = "intel"
COLLECTIONS = ("feeds",)
router = APIRouter(prefix="/intel", tags=["intel"], route_class=LabRoute)

FORMATS = {"ipset": "text/plain", "netset": "text/plain", "csv": "text/csv",
           "stix": "application/json"}


def _uuid(seed: str) -> str:
    return str(uuid.UUID(bytes=hashlib.md5(seed.encode()).digest(), version=4))


def _stix(indicators: list[tuple[str, str, str]]) -> bytes:
    objects = []
    for value, kind, name in indicators:
        pattern = (f"[ipv4-addr:value = '{value}']" if kind == "ip"
                   else f"[domain-name:value = '{value}']")
        objects.append({
            "type": "indicator", "spec_version": "2.1", "id": f"indicator--{_uuid(value)}",
            "created": "2025-02-27T10:00:00.000Z", "modified": "2025-02-27T10:00:00.000Z",
            "name": name, "indicator_types": ["malicious-activity"], "pattern": pattern,
            "pattern_type": "stix", "valid_from": "2025-02-27T10:00:00Z",
        })
    bundle = {"type": "bundle", "id": f"bundle--{_uuid('lab-stix')}", "objects": objects}
    return (json.dumps(bundle, indent=2) + "\n").encode()


def seed_bodies() -> dict[str, tuple[str, str, bytes]]:
    c2 = ["185.243.115.84", "45.142.212.61", "91.92.241.17", "193.42.33.14", "80.66.76.130",
          "62.204.41.88", "109.107.182.45"]
    drop = ["91.92.240.0/22", "45.135.232.0/24", "194.26.192.0/24", "80.66.64.0/20",
            "5.188.10.0/23"]
    head = "#\n# {n}\n#\n# ipv4 hash:{k} ipset\n#\n# {d}\n#\n# Maintainer: Handrail lab\n#\n"
    ipset = head.format(n="lab-c2", k="ip", d="Command-and-control servers seen by partners") \
        + "".join(f"{ip}\n" for ip in sorted(c2))
    netset = head.format(n="lab-drop", k="net", d="Hijacked and bulletproof networks") \
        + "".join(f"{n}\n" for n in drop)
    rows = [
        (PLANTED["c2_ip"], "ipv4", "2025-02-26", "90", "CobaltStrike team server"),
        (PLANTED["c2_domain"], "domain", "2025-02-26", "85", "Beacon domain"),
        ("rastreiofiscaliza.com", "domain", "2025-02-20", "75", "Parcel-tracking phish"),
        ("193.42.33.14", "ipv4", "2025-02-18", "60", "Phishing kit host"),
        ("login-corp-example-sso.com", "domain", "2025-01-30", "95", "Credential phishing"),
    ]
    csv = "indicator,type,first_seen,confidence,description\n" + "".join(
        ",".join(r) + "\n" for r in rows)
    stix = _stix([("45.142.212.61", "ip", "C2 server (partner report)"),
                  ("193.42.33.14", "ip", "Phishing infrastructure"),
                  ("juliodedansk.icu", "domain", "Phishing landing domain")])
    return {
        "lab-c2": ("ipset", "Partner-shared C2 IP list", ipset.encode()),
        "lab-drop": ("netset", "Networks to drop at the perimeter", netset.encode()),
        "lab-phish-csv": ("csv", "Phishing and malware indicators (CSV export)", csv.encode()),
        "lab-stix": ("stix", "ISAC STIX 2.1 bundle", stix),
    }


def _doc(name: str, fmt: str, description: str, data: bytes, digest: str) -> dict:
    return {"name": name, "format": fmt, "description": description, "sha256": digest,
            "size": len(data), "lines": data.count(b"\n")}


def seed(world, store) -> dict:
    feeds = {}
    for name, (fmt, desc, data) in seed_bodies().items():
        digest = store.put_blob(data)
        feeds[name] = _doc(name, fmt, desc, data, digest)
    return {"feeds": feeds}


def _get(store, name: str) -> dict:
    doc = store.get(TOOL, "feeds", name)
    if doc is None:
        raise not_found(f"There is no intel feed named {name}.")
    return doc


def _release_blob(store, digest: str) -> None:
    if not any(f["sha256"] == digest for f in store.all(TOOL, "feeds")):
        store.drop_blob(digest)


@router.get("/feeds")
async def list_feeds(store: StoreDep) -> dict:
    return {"feeds": store.all(TOOL, "feeds")}


@router.get("/feeds/{name}")
async def get_feed(name: str, store: StoreDep) -> Response:
    doc = _get(store, name)
    data = store.get_blob(doc["sha256"]) or b""
    return Response(content=data, media_type=FORMATS[doc["format"]],
                    headers={"ETag": f'"{doc["sha256"]}"'})


@router.get("/feeds/{name}/info")
async def feed_info(name: str, store: StoreDep) -> dict:
    return _get(store, name)


@router.put("/feeds/{name}")
async def put_feed(name: str, request: Request, store: StoreDep, format: str | None = None):
    if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
        raise invalid("A feed name uses letters, digits, '-', '_' and '.'.")
    existing = store.get(TOOL, "feeds", name)
    fmt = format or (existing["format"] if existing else None)
    if fmt not in FORMATS:
        raise invalid("format must be one of ipset, netset, csv, stix.")
    data = await request.body()
    with store.batch():
        digest = store.put_blob(data)
        doc = _doc(name, fmt, existing["description"] if existing else "", data, digest)
        store.put(TOOL, "feeds", name, doc)
        if existing and existing["sha256"] != digest:
            _release_blob(store, existing["sha256"])
    return JSONResponse(doc, status_code=200 if existing else 201)


@router.delete("/feeds/{name}")
async def delete_feed(name: str, store: StoreDep) -> dict:
    doc = _get(store, name)
    with store.batch():
        store.delete(TOOL, "feeds", name)
        _release_blob(store, doc["sha256"])
    return {"removed": name}
