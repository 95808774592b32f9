"""SIEM: the event store and its watchlists (users and hosts that get extra scrutiny).

Routes:
- `GET /siem/watchlist` -> `{"entries": [{"kind": "user|host", "value", "reason",
  "added_at"}]}`; `?kind=` filters.
- `GET /siem/watchlist/{kind}/{value}` -> the entry, 404.
- `POST /siem/watchlist` `{"kind", "value", "reason"?}` -> 201; 404 if the user/host is not
  in the estate (IAM users / EDR hosts); 409 if already watched; 422 on a bad kind.
- `DELETE /siem/watchlist/{kind}/{value}` -> `{"removed": "kind:value"}`, 404.
- `POST /siem/events` `{"source", "message", "severity"?, "action"?, "dest"?}` -> 201 the
  stored event (id `LOG-…`): the log sink (Handrail ships its signed audit checkpoints here).
- `GET /siem/events?q=...&limit=100` -> `{"events": [...], "total"}` newest first. `q` is
  whitespace-separated terms, all of which must match: `field:value` (case-insensitive
  equality on that field, `*` globs allowed) or a bare word (substring of any field).
"""

from __future__ import annotations

import fnmatch
import random
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from lab.clock import now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, invalid, not_found
from lab.seed import BENIGN, PLANTED

TOOL = "siem"
COLLECTIONS = ("watchlist", "events")
router = APIRouter(prefix="/siem", tags=["siem"], route_class=LabRoute)


def seed(world, store) -> dict:
    rng = random.Random(world.rng_seed + 2)
    humans = [p for p in world.people if not p.username.startswith("svc-")]
    laptops = {m.owner: m for m in world.machines if m.type == "laptop"}
    events = []
    for _ in range(180):
        p = rng.choice(humans)
        host = laptops.get(p.username)
        kind = rng.choice(("auth", "auth", "proxy", "proxy", "dns"))
        ev = {"source": kind, "user": p.username, "host": host.hostname if host else None,
              "src_ip": host.ip if host else None, "severity": "info"}
        if kind == "auth":
            ok = rng.random() < 0.9
            ev.update(action="login_success" if ok else "login_failure",
                      dest="sso.corp.example", message=f"{'Successful' if ok else 'Failed'}"
                      f" sign-in for {p.username}")
            if not ok:
                ev["severity"] = "low"
        else:
            dom = rng.choice(BENIGN)
            ev.update(action="allowed" if kind == "proxy" else "query", dest=dom,
                      message=f"{p.username} -> {dom}")
        events.append((rng.randint(1, 24 * 14), ev))
    for i, host in enumerate(world.compromised):
        m = next(x for x in world.machines if x.hostname == host)
        for value in (PLANTED["c2_domain"], PLANTED["c2_ip"]):
            events.append((3 + i, {"source": "edr", "user": m.owner, "host": host,
                                   "src_ip": m.ip, "severity": "high", "action": "beacon",
                                   "dest": value, "message": f"Periodic beacon to {value}"}))
    for domain, visitors in world.visitors.items():
        for host in visitors:
            m = next(x for x in world.machines if x.hostname == host)
            events.append((29, {"source": "proxy", "user": m.owner, "host": host,
                                "src_ip": m.ip, "severity": "medium", "action": "allowed",
                                "dest": domain, "message": f"{m.owner} -> {domain}"}))
    events.sort(key=lambda e: (-e[0], e[1]["message"]))
    docs = {}
    for n, (hours, ev) in enumerate(events, start=1):
        eid = f"EVT-{n:06d}"
        docs[eid] = {"id": eid, "at": seed_time(hours), **ev}
    watch = {"user:kharris": {"kind": "user", "value": "kharris",
                              "reason": "Resignation notice; departing employee monitoring",
                              "added_at": seed_time(96)}}
    if "kharris" not in {p.username for p in world.people}:
        watch = {}
    return {"watchlist": watch, "events": docs}


class WatchIn(BaseModel):
    kind: Literal["user", "host"]
    value: str = Field(min_length=1)
    reason: str = ""


def _exists(store, kind: str, value: str) -> bool:
    if kind == "user":
        return store.get("iam", "users", value) is not None
    return store.get("edr", "hosts", value) is not None


@router.get("/watchlist")
async def list_watchlist(store: StoreDep, kind: str | None = None) -> dict:
    entries = store.all(TOOL, "watchlist")
    return {"entries": [e for e in entries if kind is None or e["kind"] == kind]}


@router.get("/watchlist/{kind}/{value}")
async def get_watch(kind: str, value: str, store: StoreDep) -> dict:
    entry = store.get(TOOL, "watchlist", f"{kind}:{value}")
    if entry is None:
        raise not_found(f"The {kind} {value} is not on the watchlist.")
    return entry


@router.post("/watchlist", status_code=201)
async def watch(body: WatchIn, store: StoreDep) -> dict:
    if not _exists(store, body.kind, body.value):
        raise not_found(f"There is no {body.kind} named {body.value}.", f"unknown_{body.kind}")
    key = f"{body.kind}:{body.value}"
    if store.get(TOOL, "watchlist", key) is not None:
        raise conflict(f"The {body.kind} {body.value} is already on the watchlist.",
                       "already_present")
    entry = {"kind": body.kind, "value": body.value, "reason": body.reason,
             "added_at": now_iso()}
    store.put(TOOL, "watchlist", key, entry)
    return entry


@router.delete("/watchlist/{kind}/{value}")
async def unwatch(kind: str, value: str, store: StoreDep) -> dict:
    if kind not in ("user", "host"):
        raise invalid("kind must be 'user' or 'host'.")
    if not store.delete(TOOL, "watchlist", f"{kind}:{value}"):
        raise not_found(f"The {kind} {value} is not on the watchlist.")
    return {"removed": f"{kind}:{value}"}


def _matches(ev: dict, terms: list[str]) -> bool:
    for term in terms:
        field, sep, want = term.partition(":")
        if sep and field in ev and want:
            got = "" if ev[field] is None else str(ev[field]).lower()
            if not fnmatch.fnmatchcase(got, want.lower()):
                return False
        else:
            t = term.lower()
            if not any(t in str(v).lower() for v in ev.values() if v is not None):
                return False
    return True


@router.get("/events")
async def events(store: StoreDep, q: str = "", limit: int = Query(100, ge=1, le=10_000)) -> dict:
    terms = q.split()
    found = [e for e in store.all(TOOL, "events") if _matches(e, terms)]
    found.reverse()
    return {"events": found[:limit], "total": len(found)}


class EventIn(BaseModel):
    source: str = Field(min_length=1, max_length=100)
    message: str = Field(min_length=1, max_length=20_000)
    severity: Literal["info", "low", "medium", "high", "critical"] = "info"
    action: str = Field(default="", max_length=100)
    dest: str | None = Field(default=None, max_length=500)


@router.post("/events", status_code=201)
async def ingest(body: EventIn, store: StoreDep) -> dict:
    """Append one event to the SIEM (never edited or deleted afterwards)."""
    eid = f"LOG-{store.next_id('siem-log'):06d}"
    doc = {"id": eid, "at": now_iso(), "user": None, "host": None, "src_ip": None, **body.model_dump()}
    store.put(TOOL, "events", eid, doc)
    return doc
