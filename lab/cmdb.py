"""CMDB: the asset inventory — devices, approved device types/vendors, protected networks.

Routes:
- `GET /cmdb/devices` -> `{"devices": [...]}`; filters `?owner=`, `?ip=`, `?mac=`,
  `?hostname=`, `?type=`, `?tag=`. A device: `{"id": "DEV-00001", "hostname", "owner",
  "type", "vendor", "model", "network", "ip", "mac", "tags", "registered_at"}`.
- `GET /cmdb/devices/{id}` -> the device, 404.
- `POST /cmdb/devices` `{"hostname", "owner", "type", "vendor", "model"?, "network", "ip"?,
  "mac", "tags"?}` -> 201; 409 if the MAC is already registered; 404 unknown owner;
  422 malformed MAC/IP.
- `DELETE /cmdb/devices/{id}` -> `{"removed": id}` (deregister), 404.
- `GET /cmdb/approved` -> `{"types": [...], "vendors": [...]}`.
- `GET /cmdb/protected-networks` -> `{"networks": [{"name", "cidr", "owner", "reason"}]}`:
  ranges that must never be blocked (the SaaS CRM, the largest customer, ourselves).
- `GET /cmdb/networks` -> `{"networks": [{"name", "cidr"}]}` internal network segments.
"""

from __future__ import annotations

import ipaddress
import re

from fastapi import APIRouter
from pydantic import BaseModel, Field

from lab.clock import now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, invalid, not_found
from lab.seed import NETWORKS

TOOL = "cmdb"
COLLECTIONS = ("devices", "approved", "protected_networks", "networks")
router = APIRouter(prefix="/cmdb", tags=["cmdb"], route_class=LabRoute)

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
APPROVED_TYPES = ("laptop", "desktop", "server", "database", "phone", "access_point",
                  "switch", "printer")
APPROVED_VENDORS = ("Apple", "Aruba", "Cisco", "Dell", "HP", "Lenovo", "Samsung")


def norm_mac(mac: str) -> str:
    m = mac.strip().lower().replace("-", ":")
    if not _MAC.match(m):
        raise invalid(f"'{mac}' is not a MAC address like aa:bb:cc:dd:ee:ff.")
    return m


def seed(world, store) -> dict:
    devices = {}
    for i, m in enumerate(world.machines, start=1):
        did = f"DEV-{i:05d}"
        devices[did] = {"id": did, "hostname": m.hostname, "owner": m.owner, "type": m.type,
                        "vendor": m.vendor, "model": m.model, "network": m.network, "ip": m.ip,
                        "mac": m.mac, "tags": m.tags, "registered_at": seed_time(2000 - i)}
    store.set_counter("cmdb_devices", len(devices))
    protected = {
        "saas-crm": {"name": "saas-crm", "cidr": "161.71.0.0/16", "owner": "Sales Operations",
                     "reason": "The SaaS CRM every salesperson uses; blocking it stops sales."},
        "largest-customer": {"name": "largest-customer", "cidr": "146.75.0.0/16",
                             "owner": "Account Management",
                             "reason": "Our largest customer's network; blocking it breaks"
                                       " their integrations."},
        "corporate-internal": {"name": "corporate-internal", "cidr": "10.0.0.0/8",
                               "owner": "IT", "reason": "Our own internal networks."},
    }
    return {
        "devices": devices,
        "approved": {"types": {"name": "types", "values": list(APPROVED_TYPES)},
                     "vendors": {"name": "vendors", "values": list(APPROVED_VENDORS)}},
        "protected_networks": protected,
        "networks": {k: {"name": k, "cidr": v} for k, v in NETWORKS.items()},
    }


class DeviceIn(BaseModel):
    hostname: str = Field(min_length=1)
    owner: str | None = None
    type: str = Field(min_length=1)
    vendor: str = Field(min_length=1)
    model: str = ""
    network: str = Field(min_length=1)
    ip: str | None = None
    mac: str
    tags: list[str] = Field(default_factory=list)


@router.get("/devices")
async def list_devices(store: StoreDep, owner: str | None = None, ip: str | None = None,
                       mac: str | None = None, hostname: str | None = None,
                       type: str | None = None, tag: str | None = None) -> dict:
    devices = store.all(TOOL, "devices")
    if mac is not None:
        mac = norm_mac(mac)
    filters = {"owner": owner, "ip": ip, "mac": mac, "hostname": hostname, "type": type}
    for field, want in filters.items():
        if want is not None:
            devices = [d for d in devices if d[field] == want]
    if tag is not None:
        devices = [d for d in devices if tag in d["tags"]]
    return {"devices": devices}


@router.get("/devices/{device_id}")
async def get_device(device_id: str, store: StoreDep) -> dict:
    doc = store.get(TOOL, "devices", device_id)
    if doc is None:
        raise not_found(f"There is no device {device_id} in the CMDB.")
    return doc


@router.post("/devices", status_code=201)
async def register(body: DeviceIn, store: StoreDep) -> dict:
    mac = norm_mac(body.mac)
    if body.ip is not None:
        try:
            ipaddress.ip_address(body.ip)
        except ValueError as exc:
            raise invalid(f"'{body.ip}' is not a valid IP address.") from exc
    if body.owner is not None and store.get("iam", "users", body.owner) is None:
        raise not_found(f"There is no user named {body.owner}.", "unknown_user")
    for d in store.all(TOOL, "devices"):
        if d["mac"] == mac:
            raise conflict(f"The MAC {mac} is already registered as {d['id']}.",
                           "already_registered")
    with store.batch():
        did = f"DEV-{store.next_id('cmdb_devices'):05d}"
        doc = {"id": did, **body.model_dump(), "mac": mac, "tags": sorted(body.tags),
               "registered_at": now_iso()}
        store.put(TOOL, "devices", did, doc)
    return doc


@router.delete("/devices/{device_id}")
async def deregister(device_id: str, store: StoreDep) -> dict:
    if not store.delete(TOOL, "devices", device_id):
        raise not_found(f"There is no device {device_id} in the CMDB.")
    return {"removed": device_id}


@router.get("/approved")
async def approved(store: StoreDep) -> dict:
    t = store.get(TOOL, "approved", "types") or {"values": []}
    v = store.get(TOOL, "approved", "vendors") or {"values": []}
    return {"types": t["values"], "vendors": v["values"]}


@router.get("/protected-networks")
async def protected_networks(store: StoreDep) -> dict:
    return {"networks": store.all(TOOL, "protected_networks")}


@router.get("/networks")
async def networks(store: StoreDep) -> dict:
    return {"networks": store.all(TOOL, "networks")}
