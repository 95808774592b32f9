"""NAC: network access control — what passive scanning sees on the wire, and the switch
port / SSID kill switch.

Routes (`{mac}` like `aa:bb:cc:dd:ee:ff`; 404 for a MAC never seen):
- `GET /nac/devices` -> `{"devices": [...]}`; `?network=`, `?type=`, `?connected=`.
  A device: `{"mac", "ip", "vendor", "type", "hostname" (or null), "network", "port",
  "first_seen", "last_seen", "connected": bool, "disconnection": null | {"reason", "at"}}`.
- `GET /nac/devices/{mac}` -> the device.
- `POST /nac/devices/{mac}/disconnect` `{"reason"?}` -> the device; 409 if disconnected.
- `POST /nac/devices/{mac}/reconnect` -> the device; 409 if connected.

Seeded with every CMDB device plus things nobody registered: a consumer Wi-Fi access
point plugged into a desk port and a Raspberry Pi.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from lab.clock import now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, not_found

TOOL = "nac"
COLLECTIONS = ("devices",)
router = APIRouter(prefix="/nac", tags=["nac"], route_class=LabRoute)

ROGUE_AP_MAC = "50:c7:bf:3a:91:0e"
ROGUE_PI_MAC = "b8:27:eb:44:10:7c"


def seed(world, store) -> dict:
    devices = {}
    for i, m in enumerate(world.machines):
        devices[m.mac] = {"mac": m.mac, "ip": m.ip, "vendor": m.vendor, "type": m.type,
                          "hostname": m.hostname, "network": m.network,
                          "port": f"sw-access-{1 + i // 48:02d}/gi1/0/{1 + i % 48}",
                          "first_seen": seed_time(2000 - i), "last_seen": seed_time(1),
                          "connected": True, "disconnection": None}
    devices[ROGUE_AP_MAC] = {"mac": ROGUE_AP_MAC, "ip": "10.11.7.201", "vendor": "TP-Link",
                             "type": "access_point", "hostname": None, "network": "corp-wired",
                             "port": "sw-access-03/gi1/0/17", "first_seen": seed_time(20),
                             "last_seen": seed_time(0.5), "connected": True,
                             "disconnection": None, "ssid": "Free_Office_WiFi"}
    devices[ROGUE_PI_MAC] = {"mac": ROGUE_PI_MAC, "ip": "10.11.7.202", "vendor": "Raspberry Pi",
                             "type": "single_board_computer", "hostname": "raspberrypi",
                             "network": "corp-wired", "port": "sw-access-05/gi1/0/3",
                             "first_seen": seed_time(6), "last_seen": seed_time(0.5),
                             "connected": True, "disconnection": None}
    return {"devices": devices}


class DisconnectIn(BaseModel):
    reason: str = ""


def _get(store, mac: str) -> dict:
    doc = store.get(TOOL, "devices", mac.strip().lower().replace("-", ":"))
    if doc is None:
        raise not_found(f"NAC has never seen a device with MAC {mac}.")
    return doc


@router.get("/devices")
async def list_devices(store: StoreDep, network: str | None = None, type: str | None = None,
                       connected: bool | None = None) -> dict:
    devices = store.all(TOOL, "devices")
    if network is not None:
        devices = [d for d in devices if d["network"] == network]
    if type is not None:
        devices = [d for d in devices if d["type"] == type]
    if connected is not None:
        devices = [d for d in devices if d["connected"] is connected]
    return {"devices": devices}


@router.get("/devices/{mac}")
async def get_device(mac: str, store: StoreDep) -> dict:
    return _get(store, mac)


@router.post("/devices/{mac}/disconnect")
async def disconnect(mac: str, body: DisconnectIn, store: StoreDep) -> dict:
    doc = _get(store, mac)
    if not doc["connected"]:
        raise conflict(f"{doc['mac']} is already disconnected.", "already_disconnected")
    doc["connected"] = False
    doc["disconnection"] = {"reason": body.reason, "at": now_iso()}
    store.put(TOOL, "devices", doc["mac"], doc)
    return doc


@router.post("/devices/{mac}/reconnect")
async def reconnect(mac: str, store: StoreDep) -> dict:
    doc = _get(store, mac)
    if doc["connected"]:
        raise conflict(f"{doc['mac']} is connected.", "not_disconnected")
    doc["connected"] = True
    doc["disconnection"] = None
    store.put(TOOL, "devices", doc["mac"], doc)
    return doc
