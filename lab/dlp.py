"""DLP: the data-loss-prevention console's alert queue.

Routes:
- `GET /dlp/alerts?status=new|processed` -> `{"alerts": [alert...]}` oldest first. An alert:
  `{"id": "DLP-0001", "user" (may be null), "host", "channel": "email|gateway|usb",
  "detector": "account_numbers|encrypted_archive|other", "severity", "status",
  "created_at", "sample": {"file_name", "size", "sha256", "destination", "match_count"},
  "processing": null | {"by", "outcome", "at"}}`.
- `GET /dlp/alerts/{id}` -> the alert, 404.
- `POST /dlp/alerts/{id}/processed` `{"by", "outcome"?}` -> the alert; 409 if processed.
- `POST /dlp/alerts/{id}/reopen` -> the alert back to `new`; 409 if not processed.

Some seeded alerts are deliberately bad input: an unknown host, a missing user.
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter
from pydantic import BaseModel, Field

from lab.clock import now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, invalid, not_found

TOOL = "dlp"
COLLECTIONS = ("alerts",)
router = APIRouter(prefix="/dlp", tags=["dlp"], route_class=LabRoute)


def seed(world, store) -> dict:
    laptops = {m.owner: m.hostname for m in world.machines if m.type == "laptop"}
    fin = [p.username for p in world.people if p.department == "Finance"]
    eng = [p.username for p in world.people if p.department == "Engineering"]
    sales = [p.username for p in world.people if p.department == "Sales"]
    rows = [
        (fin[1], "email", "account_numbers", "high", "Q3-payroll-accounts.xlsx",
         "personal.mail@gmail.example", 214),
        (fin[2], "gateway", "account_numbers", "high", "customers_iban.csv",
         "https://files.upload-share.example/u/77", 1830),
        (eng[1], "usb", "encrypted_archive", "medium", "backup.7z", "USB SanDisk 64GB", 0),
        (sales[1], "email", "other", "low", "pricing-2025.pdf", "partner@reseller.example", 3),
        (sales[2], "gateway", "encrypted_archive", "high", "crm_export.zip",
         "https://mega.example/f/abc", 0),
        ("kharris", "usb", "account_numbers", "high", "wire_instructions.docx",
         "USB Kingston 32GB", 12),
        (eng[2], "email", "other", "low", "design-notes.md", "friend@mail.example", 1),
        ("rchen", "email", "account_numbers", "medium", "board-pack.pdf",
         "assistant@home.example", 4),
        (None, "gateway", "other", "medium", "unknown.bin", "https://drop.example/x", 0),
        (fin[3], "usb", "encrypted_archive", "high", "ledger.rar", "USB generic", 0),
        (eng[3], "gateway", "account_numbers", "medium", "test-data.csv",
         "https://pastebin.example/raw/1", 57),
    ]
    alerts = {}
    for i, (user, channel, detector, sev, fname, dest, matches) in enumerate(rows, start=1):
        host = laptops.get(user) if user else "lt-unknown-0042"
        if i == 4:
            host = "ws-ghost-9999"  # a host that no tool knows
        aid = f"DLP-{i:04d}"
        size = 10_000 + 7919 * i
        alerts[aid] = {
            "id": aid, "user": user, "host": host, "channel": channel, "detector": detector,
            "severity": sev, "status": "new", "created_at": seed_time(48 - i * 3),
            "sample": {"file_name": fname, "size": size,
                       "sha256": hashlib.sha256(fname.encode()).hexdigest(),
                       "destination": dest, "match_count": matches},
            "processing": None,
        }
    return {"alerts": alerts}


class ProcessedIn(BaseModel):
    by: str = Field(min_length=1)
    outcome: str = ""


def _get(store, alert_id: str) -> dict:
    doc = store.get(TOOL, "alerts", alert_id)
    if doc is None:
        raise not_found(f"There is no DLP alert {alert_id}.")
    return doc


@router.get("/alerts")
async def list_alerts(store: StoreDep, status: str | None = None) -> dict:
    if status not in (None, "new", "processed"):
        raise invalid("status must be 'new' or 'processed'.")
    return {"alerts": [a for a in store.all(TOOL, "alerts")
                       if status is None or a["status"] == status]}


@router.get("/alerts/{alert_id}")
async def get_alert(alert_id: str, store: StoreDep) -> dict:
    return _get(store, alert_id)


@router.post("/alerts/{alert_id}/processed")
async def processed(alert_id: str, body: ProcessedIn, store: StoreDep) -> dict:
    doc = _get(store, alert_id)
    if doc["status"] == "processed":
        raise conflict(f"DLP alert {alert_id} is already processed.", "already_processed")
    doc["status"] = "processed"
    doc["processing"] = {"by": body.by, "outcome": body.outcome, "at": now_iso()}
    store.put(TOOL, "alerts", alert_id, doc)
    return doc


@router.post("/alerts/{alert_id}/reopen")
async def reopen(alert_id: str, store: StoreDep) -> dict:
    doc = _get(store, alert_id)
    if doc["status"] != "processed":
        raise conflict(f"DLP alert {alert_id} is not processed.", "not_processed")
    doc["status"] = "new"
    doc["processing"] = None
    store.put(TOOL, "alerts", alert_id, doc)
    return doc
