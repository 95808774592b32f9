"""EDR: endpoint detection and response agents on every laptop, desktop, server and phone.

Routes (`{host}` is the hostname; 404 for an unknown host):
- `GET /edr/hosts` -> `{"hosts": [host...]}`; `?owner=`, `?tag=`, `?isolated=` filter.
  A host: `{"hostname", "ip", "mac", "os", "type", "vendor", "owner", "network", "tags",
  "role", "telemetry": "normal|elevated|verbose", "isolated": bool, "isolation": null |
  {"reason", "at"}}`.
- `GET /edr/hosts/{host}` -> the host.
- `PUT /edr/hosts/{host}/telemetry` `{"level"}` -> the host (setting the current level
  again changes nothing).
- `POST /edr/hosts/{host}/scan` -> `{"host", "verdict": "clean|compromised",
  "indicators": [...], "scanned_at"}`; deterministic per host, changes nothing.
- `POST /edr/hosts/{host}/isolate` `{"reason"?}` -> the host; 409 if already isolated.
- `POST /edr/hosts/{host}/release` -> the host; 409 if not isolated.
- `POST /edr/hosts/{host}/collect` `{"kind": "memory|disk", "case_id"?}` -> 201 artefact
  `{"id": "ART-000001", "host", "kind", "case_id", "size", "sha256", "collected_at"}`.
- `GET /edr/artefacts` / `GET /edr/artefacts/{id}` -> collected evidence.
- `POST /edr/hosts/{host}/capture` `{"case_id", "filter"?, "duration_s"?}` -> 201 capture
  `{"id": "PCAP-000001", "host", "case_id", "filter", "duration_s", "started_at"}`; 409
  if one is running. `GET /edr/hosts/{host}/capture` -> the running capture or 404.
- `DELETE /edr/hosts/{host}/capture` -> `{"stopped": capture_id, "artefact": {...}}`; 404
  if none is running.
- `GET /edr/search?indicator=X` -> `{"indicator", "hosts": [{"hostname", "owner", "kind",
  "first_seen", "last_seen", "count"}]}`: hosts whose telemetry saw X (case-insensitive).

Evidence (collected images, finished captures) goes to evidence storage: it is not part
of the estate and so not part of `/_lab/state`; running captures are.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from lab.clock import now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, invalid, not_found
from lab.seed import BENIGN, PLANTED

TOOL = "edr"
COLLECTIONS = ("hosts", "observations", "infections", "captures")
router = APIRouter(prefix="/edr", tags=["edr"], route_class=LabRoute)


def _kind(value: str) -> str:
    if value.startswith(("http://", "https://")):
        return "url"
    if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return "sha256"
    if value.replace(".", "").isdigit():
        return "ip"
    return "domain"


def seed(world, store) -> dict:
    import random

    rng = random.Random(world.rng_seed + 1)
    hosts, observations, infections = {}, {}, {}
    for m in world.machines:
        if m.type in ("access_point", "switch", "printer"):
            continue  # no agent on network gear
        hosts[m.hostname] = {
            "hostname": m.hostname, "ip": m.ip, "mac": m.mac, "os": m.os, "type": m.type,
            "vendor": m.vendor, "owner": m.owner, "network": m.network, "tags": m.tags,
            "role": m.role, "telemetry": "normal", "isolated": False, "isolation": None,
        }
        seen = []
        for value in sorted(rng.sample(BENIGN, 3)):
            first = rng.randint(24, 24 * 30)
            seen.append({"indicator": value, "kind": "domain", "first_seen": seed_time(first),
                         "last_seen": seed_time(rng.randint(1, 23)),
                         "count": rng.randint(5, 400)})
        observations[m.hostname] = {"host": m.hostname, "observations": seen}
    for i, host in enumerate(world.compromised):
        planted = sorted(PLANTED.values())
        for value in planted:
            observations[host]["observations"].append(
                {"indicator": value, "kind": _kind(value), "first_seen": seed_time(72 - i * 6),
                 "last_seen": seed_time(2 + i), "count": 10 + 7 * i})
        infections[host] = {"host": host, "indicators": planted,
                            "family": "CobaltStrike beacon"}
    for domain, visitors in world.visitors.items():
        for i, host in enumerate(visitors):
            observations[host]["observations"].append(
                {"indicator": domain, "kind": "domain", "first_seen": seed_time(30 - i),
                 "last_seen": seed_time(29 - i), "count": 1 + i})
    return {"hosts": hosts, "observations": observations, "infections": infections,
            "captures": {}}


def _host(store, host: str) -> dict:
    doc = store.get(TOOL, "hosts", host)
    if doc is None:
        raise not_found(f"There is no EDR agent on a host named {host}.", "unknown_host")
    return doc


class TelemetryIn(BaseModel):
    level: Literal["normal", "elevated", "verbose"]


class IsolateIn(BaseModel):
    reason: str = ""


class CollectIn(BaseModel):
    kind: Literal["memory", "disk"]
    case_id: str | None = None


class CaptureIn(BaseModel):
    case_id: str = Field(min_length=1)
    filter: str = ""
    duration_s: int | None = Field(default=None, ge=1)


@router.get("/hosts")
async def list_hosts(store: StoreDep, owner: str | None = None, tag: str | None = None,
                     isolated: bool | None = None) -> dict:
    hosts = store.all(TOOL, "hosts")
    if owner is not None:
        hosts = [h for h in hosts if h["owner"] == owner]
    if tag is not None:
        hosts = [h for h in hosts if tag in h["tags"]]
    if isolated is not None:
        hosts = [h for h in hosts if h["isolated"] is isolated]
    return {"hosts": hosts}


@router.get("/hosts/{host}")
async def get_host(host: str, store: StoreDep) -> dict:
    return _host(store, host)


@router.put("/hosts/{host}/telemetry")
async def set_telemetry(host: str, body: TelemetryIn, store: StoreDep) -> dict:
    doc = _host(store, host)
    if doc["telemetry"] != body.level:
        doc["telemetry"] = body.level
        store.put(TOOL, "hosts", host, doc)
    return doc


@router.post("/hosts/{host}/scan")
async def scan(host: str, store: StoreDep) -> dict:
    _host(store, host)
    infection = store.get(TOOL, "infections", host)
    return {"host": host, "verdict": "compromised" if infection else "clean",
            "indicators": infection["indicators"] if infection else [],
            "scanned_at": now_iso()}


@router.post("/hosts/{host}/isolate")
async def isolate(host: str, body: IsolateIn, store: StoreDep) -> dict:
    doc = _host(store, host)
    if doc["isolated"]:
        raise conflict(f"{host} is already isolated.", "already_isolated")
    doc["isolated"] = True
    doc["isolation"] = {"reason": body.reason, "at": now_iso()}
    store.put(TOOL, "hosts", host, doc)
    return doc


@router.post("/hosts/{host}/release")
async def release(host: str, store: StoreDep) -> dict:
    doc = _host(store, host)
    if not doc["isolated"]:
        raise conflict(f"{host} is not isolated.", "not_isolated")
    doc["isolated"] = False
    doc["isolation"] = None
    store.put(TOOL, "hosts", host, doc)
    return doc


def _artefact(store, host: str, kind: str, case_id: str | None, size: int) -> dict:
    art_id = f"ART-{store.next_id('edr_artefacts'):06d}"
    digest = hashlib.sha256(f"{host}:{kind}:{art_id}".encode()).hexdigest()
    doc = {"id": art_id, "host": host, "kind": kind, "case_id": case_id, "size": size,
           "sha256": digest, "collected_at": now_iso()}
    store.put(TOOL, "artefacts", art_id, doc)  # evidence storage: not in COLLECTIONS
    return doc


@router.post("/hosts/{host}/collect", status_code=201)
async def collect(host: str, body: CollectIn, store: StoreDep) -> dict:
    _host(store, host)
    size = 17_179_869_184 if body.kind == "memory" else 512_110_190_592
    with store.batch():
        return _artefact(store, host, body.kind, body.case_id, size)


@router.get("/artefacts")
async def list_artefacts(store: StoreDep) -> dict:
    return {"artefacts": store.all(TOOL, "artefacts")}


@router.get("/artefacts/{art_id}")
async def get_artefact(art_id: str, store: StoreDep) -> dict:
    doc = store.get(TOOL, "artefacts", art_id)
    if doc is None:
        raise not_found(f"There is no artefact {art_id}.")
    return doc


@router.post("/hosts/{host}/capture", status_code=201)
async def start_capture(host: str, body: CaptureIn, store: StoreDep) -> dict:
    _host(store, host)
    if store.get(TOOL, "captures", host) is not None:
        raise conflict(f"A packet capture is already running on {host}.", "already_capturing")
    with store.batch():
        doc = {"id": f"PCAP-{store.next_id('edr_captures'):06d}", "host": host,
               "case_id": body.case_id, "filter": body.filter, "duration_s": body.duration_s,
               "started_at": now_iso()}
        store.put(TOOL, "captures", host, doc)
    return doc


@router.get("/hosts/{host}/capture")
async def get_capture(host: str, store: StoreDep) -> dict:
    _host(store, host)
    doc = store.get(TOOL, "captures", host)
    if doc is None:
        raise not_found(f"No packet capture is running on {host}.")
    return doc


@router.delete("/hosts/{host}/capture")
async def stop_capture(host: str, store: StoreDep) -> dict:
    _host(store, host)
    doc = store.get(TOOL, "captures", host)
    if doc is None:
        raise not_found(f"No packet capture is running on {host}.")
    with store.batch():
        store.delete(TOOL, "captures", host)
        art = _artefact(store, host, "pcap", doc["case_id"], 48_213_504)
    return {"stopped": doc["id"], "artefact": art}


@router.get("/search")
async def search(store: StoreDep, indicator: str = "") -> dict:
    needle = indicator.strip().lower()
    if not needle:
        raise invalid("indicator must not be empty.")
    hits = []
    for obs in store.all(TOOL, "observations"):
        for o in obs["observations"]:
            if o["indicator"].lower() == needle:
                host = store.get(TOOL, "hosts", obs["host"]) or {}
                hits.append({"hostname": obs["host"], "owner": host.get("owner"),
                             "kind": o["kind"], "first_seen": o["first_seen"],
                             "last_seen": o["last_seen"], "count": o["count"]})
    return {"indicator": indicator, "hosts": hits}
