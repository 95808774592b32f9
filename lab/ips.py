"""IPS: Suricata rules deployed on the network sensors.

Routes:
- `GET /ips/rules` -> `{"rules": [{"sid", "rule", "action", "msg", "comment",
  "deployed_at"}]}` sorted by sid.
- `GET /ips/rules/{sid}` -> the rule, 404.
- `POST /ips/rules` `{"rule": "<suricata rule text>", "comment"?}` -> 201; 409 if that sid
  is deployed; 422 unless it looks like `action proto src sport -> dst dport (msg:"..";
  sid:N; ...)`.
- `DELETE /ips/rules/{sid}` -> `{"removed": sid}`, 404.
- `GET /ips/rules/{sid}/hits` -> `{"sid", "hits", "last_hit"}`: how often the sensors saw
  traffic matching the rule's content/addresses in the estate's telemetry (deterministic).
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from pydantic import BaseModel, Field

from lab.clock import now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, invalid, not_found
from lab.seed import PLANTED

TOOL = "ips"
COLLECTIONS = ("rules",)
router = APIRouter(prefix="/ips", tags=["ips"], route_class=LabRoute)

_RULE = re.compile(
    r"^\s*(alert|drop|reject|pass|rejectsrc|rejectdst|rejectboth)\s+([a-z0-9-]+)\s+(\S+)\s+(\S+)"
    r"\s+(->|<>)\s+(\S+)\s+(\S+)\s+\((.*)\)\s*$",
    re.DOTALL,
)
_MSG = re.compile(r'(?:^|;)\s*msg\s*:\s*"((?:[^"\\]|\\.)*)"\s*;')
_SID = re.compile(r"(?:^|;)\s*sid\s*:\s*(\d+)\s*;")


def parse_rule(text: str) -> dict:
    m = _RULE.match(text)
    if not m:
        raise invalid("The rule must look like: action proto src port -> dst port (msg:...; "
                      "sid:N;).", "invalid_rule")
    options = m.group(8)
    msg = _MSG.search(options)
    sid = _SID.search(options)
    if not msg or not sid:
        raise invalid("The rule's options must include msg:\"...\"; and sid:N;.", "invalid_rule")
    if not options.rstrip().endswith(";"):
        raise invalid("Every rule option must end with ';'.", "invalid_rule")
    return {"sid": int(sid.group(1)), "action": m.group(1), "msg": msg.group(1),
            "rule": text.strip()}


def seed(world, store) -> dict:
    texts = [
        (('alert tls $HOME_NET any -> $EXTERNAL_NET any (msg:"LAB Known phishing kit TLS SNI";'
         ' tls.sni; content:"login-corp-example-sso.com"; sid:9000001; rev:1;)'), 400),
        (('alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"LAB Suspicious user agent";'
         ' http.user_agent; content:"python-requests"; sid:9000002; rev:2;)'), 200),
        (('drop ip $HOME_NET any -> 45.142.212.61 any (msg:"LAB Block INC-2291 C2";'
         ' sid:9000003; rev:1;)'), 100),
    ]
    rules = {}
    for text, hours in texts:
        doc = parse_rule(text)
        doc.update(comment="baseline rule", deployed_at=seed_time(hours))
        rules[str(doc["sid"])] = doc
    return {"rules": rules}


class RuleIn(BaseModel):
    rule: str = Field(min_length=1)
    comment: str = ""


def _get(store, sid: int) -> dict:
    doc = store.get(TOOL, "rules", str(sid))
    if doc is None:
        raise not_found(f"No rule with sid {sid} is deployed.")
    return doc


@router.get("/rules")
async def list_rules(store: StoreDep) -> dict:
    return {"rules": sorted(store.all(TOOL, "rules"), key=lambda r: r["sid"])}


@router.get("/rules/{sid}")
async def get_rule(sid: int, store: StoreDep) -> dict:
    return _get(store, sid)


@router.post("/rules", status_code=201)
async def deploy(body: RuleIn, store: StoreDep) -> dict:
    doc = parse_rule(body.rule)
    if store.get(TOOL, "rules", str(doc["sid"])) is not None:
        raise conflict(f"A rule with sid {doc['sid']} is already deployed.", "already_present")
    doc.update(comment=body.comment, deployed_at=now_iso())
    store.put(TOOL, "rules", str(doc["sid"]), doc)
    return doc


@router.delete("/rules/{sid}")
async def remove(sid: int, store: StoreDep) -> dict:
    if not store.delete(TOOL, "rules", str(sid)):
        raise not_found(f"No rule with sid {sid} is deployed.")
    return {"removed": sid}


@router.get("/rules/{sid}/hits")
async def hits(sid: int, store: StoreDep) -> dict:
    doc = _get(store, sid)
    text = doc["rule"].lower()
    needles = set(PLANTED.values()) | {"login-corp-example-sso.com", "45.142.212.61"}
    count, last = 0, None
    for obs in store.all("edr", "observations"):
        for o in obs["observations"]:
            if o["indicator"] in needles and o["indicator"].lower() in text:
                count += o["count"]
                last = max(last or o["last_seen"], o["last_seen"])
    for ev in store.all("siem", "events"):
        dest = str(ev.get("dest") or "").lower()
        if dest and dest in text and ev.get("severity") != "info":
            count += 1
            last = max(last or ev["at"], ev["at"])
    return {"sid": sid, "hits": count, "last_hit": last}


# -- bulk (the intel sync deploys a rule per validated indicator) -----------------------
# `POST /ips/rules-bulk/lookup` `{"sids"}` -> `{"present": [sids deployed]}`;
# `POST /ips/rules-bulk/deploy` `{"rules": [text], "comment"}` -> `{"added": [sids],
# "already": [sids]}`; `POST /ips/rules-bulk/remove` `{"sids"}` -> `{"removed", "absent"}`.
# At most BULK_MAX per request; one malformed rule refuses the whole request (422).
BULK_MAX = 10_000


class SidsIn(BaseModel):
    sids: list[int] = Field(max_length=BULK_MAX)


class RulesIn(BaseModel):
    rules: list[str] = Field(max_length=BULK_MAX)
    comment: str = ""


@router.post("/rules-bulk/lookup")
async def bulk_lookup(body: SidsIn, store: StoreDep) -> dict:
    return {"present": [s for s in body.sids if store.get(TOOL, "rules", str(s)) is not None]}


@router.post("/rules-bulk/deploy")
async def bulk_deploy(body: RulesIn, store: StoreDep) -> dict:
    docs = [parse_rule(text) for text in body.rules]
    added, already, rows, at = [], [], [], now_iso()
    seen: set[int] = set()
    for doc in docs:
        if doc["sid"] in seen or store.get(TOOL, "rules", str(doc["sid"])) is not None:
            already.append(doc["sid"])
            continue
        seen.add(doc["sid"])
        doc.update(comment=body.comment, deployed_at=at)
        added.append(doc["sid"])
        rows.append((TOOL, "rules", str(doc["sid"]), doc))
    if rows:
        store.put_many(rows)
    return {"added": added, "already": already}


@router.post("/rules-bulk/remove")
async def bulk_remove(body: SidsIn, store: StoreDep) -> dict:
    removed, absent = [], []
    with store.batch():
        for sid in body.sids:
            (removed if store.delete(TOOL, "rules", str(sid)) else absent).append(sid)
    return {"removed": removed, "absent": absent}
