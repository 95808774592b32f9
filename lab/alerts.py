"""Alerts: the SOC's alerting queue (what pages an analyst).

Routes:
- `POST /alerts` `{"priority": "P1".."P4", "title", "body", "source", "run_id"?, "tags"?}`
  -> 201 `{"id": "ALR-000001", ..., "acknowledged": false, "acknowledged_by": null,
  "acknowledged_at": null, "raised_at"}`.
- `GET /alerts` -> `{"alerts": [...]}` oldest first; `?acknowledged=false` filters.
- `GET /alerts/{id}` -> the alert, 404.
- `POST /alerts/{id}/ack` `{"by"}` -> the alert; 409 if already acknowledged.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from lab.clock import now_iso
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, not_found

TOOL = "alerts"
COLLECTIONS = ("alerts",)
router = APIRouter(prefix="/alerts", tags=["alerts"], route_class=LabRoute)


def seed(world, store) -> dict:
    return {"alerts": {}}


class AlertIn(BaseModel):
    priority: Literal["P1", "P2", "P3", "P4"]
    title: str = Field(min_length=1)
    body: str = ""
    source: str = Field(min_length=1)
    run_id: str | None = None
    tags: list[str] = Field(default_factory=list)


class AckIn(BaseModel):
    by: str = Field(min_length=1)


def _get(store, alert_id: str) -> dict:
    alert = store.get(TOOL, "alerts", alert_id)
    if alert is None:
        raise not_found(f"There is no alert {alert_id}.")
    return alert


@router.post("", status_code=201)
async def raise_alert(body: AlertIn, store: StoreDep) -> dict:
    alert_id = f"ALR-{store.next_id('alerts'):06d}"
    alert = {"id": alert_id, **body.model_dump(), "acknowledged": False,
             "acknowledged_by": None, "acknowledged_at": None, "raised_at": now_iso()}
    store.put(TOOL, "alerts", alert_id, alert)
    return alert


@router.get("")
async def list_alerts(store: StoreDep, acknowledged: bool | None = None) -> dict:
    alerts = store.all(TOOL, "alerts")
    if acknowledged is not None:
        alerts = [a for a in alerts if a["acknowledged"] is acknowledged]
    return {"alerts": alerts}


@router.get("/{alert_id}")
async def get_alert(alert_id: str, store: StoreDep) -> dict:
    return _get(store, alert_id)


@router.post("/{alert_id}/ack")
async def ack(alert_id: str, body: AckIn, store: StoreDep) -> dict:
    alert = _get(store, alert_id)
    if alert["acknowledged"]:
        raise conflict(f"Alert {alert_id} was already acknowledged by {alert['acknowledged_by']}.",
                       "already_acknowledged")
    alert.update(acknowledged=True, acknowledged_by=body.by, acknowledged_at=now_iso())
    store.put(TOOL, "alerts", alert_id, alert)
    return alert
