"""Training: the security-awareness platform (modules and who must take them).

Routes:
- `GET /training/modules` -> `{"modules": [{"id", "title", "minutes"}]}`.
- `GET /training/enrollments` -> `{"enrollments": [{"user", "module", "reason",
  "enrolled_at", "due_at"}]}`; `?user=`, `?module=` filter.
- `GET /training/enrollments/{user}/{module}` -> the enrollment, 404.
- `POST /training/enrollments` `{"user", "module", "reason"?}` -> 201; 404 unknown user
  (IAM) or module; 409 if already enrolled.
- `DELETE /training/enrollments/{user}/{module}` -> `{"removed": "user:module"}`, 404.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter
from pydantic import BaseModel, Field

from lab.clock import iso, now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, not_found

TOOL = "training"
COLLECTIONS = ("modules", "enrollments")
router = APIRouter(prefix="/training", tags=["training"], route_class=LabRoute)

MODULES = {
    "phishing-awareness": ("Recognising phishing", 20),
    "phishing-awareness-advanced": ("Targeted phishing and BEC", 35),
    "data-handling": ("Handling customer and financial data", 30),
    "privileged-access": ("Working with privileged accounts", 25),
    "secure-browsing": ("Safe browsing and downloads", 15),
}


def _due(enrolled_at: str) -> str:
    return iso(datetime.fromisoformat(enrolled_at) + timedelta(days=14))


def seed(world, store) -> dict:
    import random

    rng = random.Random(world.rng_seed + 3)
    modules = {k: {"id": k, "title": t, "minutes": m} for k, (t, m) in MODULES.items()}
    enrollments = {}
    for p in rng.sample([p for p in world.people if not p.username.startswith("svc-")], 20):
        mod = rng.choice(sorted(MODULES))
        at = seed_time(rng.randint(24, 24 * 20))
        enrollments[f"{p.username}:{mod}"] = {"user": p.username, "module": mod,
                                             "reason": "annual refresher", "enrolled_at": at,
                                             "due_at": _due(at)}
    return {"modules": modules, "enrollments": enrollments}


class EnrollIn(BaseModel):
    user: str = Field(min_length=1)
    module: str = Field(min_length=1)
    reason: str = ""


@router.get("/modules")
async def modules(store: StoreDep) -> dict:
    return {"modules": store.all(TOOL, "modules")}


@router.get("/enrollments")
async def list_enrollments(store: StoreDep, user: str | None = None,
                           module: str | None = None) -> dict:
    items = store.all(TOOL, "enrollments")
    return {"enrollments": [e for e in items if (user is None or e["user"] == user)
                            and (module is None or e["module"] == module)]}


@router.get("/enrollments/{user}/{module}")
async def get_enrollment(user: str, module: str, store: StoreDep) -> dict:
    doc = store.get(TOOL, "enrollments", f"{user}:{module}")
    if doc is None:
        raise not_found(f"{user} is not enrolled in {module}.")
    return doc


@router.post("/enrollments", status_code=201)
async def enroll(body: EnrollIn, store: StoreDep) -> dict:
    if store.get("iam", "users", body.user) is None:
        raise not_found(f"There is no user named {body.user}.", "unknown_user")
    if store.get(TOOL, "modules", body.module) is None:
        raise not_found(f"There is no training module {body.module}.", "unknown_module")
    key = f"{body.user}:{body.module}"
    if store.get(TOOL, "enrollments", key) is not None:
        raise conflict(f"{body.user} is already enrolled in {body.module}.", "already_enrolled")
    at = now_iso()
    doc = {"user": body.user, "module": body.module, "reason": body.reason, "enrolled_at": at,
           "due_at": _due(at)}
    store.put(TOOL, "enrollments", key, doc)
    return doc


@router.delete("/enrollments/{user}/{module}")
async def unenroll(user: str, module: str, store: StoreDep) -> dict:
    if not store.delete(TOOL, "enrollments", f"{user}:{module}"):
        raise not_found(f"{user} is not enrolled in {module}.")
    return {"removed": f"{user}:{module}"}
