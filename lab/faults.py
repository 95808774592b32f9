"""Fault injection: make chosen routes slow or failing, repeatably.

A rule matches a request path by glob (`fnmatch`, `*` also crosses `/`, e.g.
`/firewall/*`) or, when it starts with `^`, by regular expression (`re.search`), and
optionally by method. For each matching request, in the order rules were added: sleep
`latency_ms`; answer the fixed `status` (a 4xx) if set; otherwise fail with
`error_status` (5xx) with probability `error_rate`, drawn from `random.Random(seed)` so a
test sees the same sequence every time. `count` (optional) limits how many requests a
rule affects, after letting the first `skip` matching requests through. `after_apply`
rules let the request run (the tool changes, the idempotency key is stored) and then
answer the error instead of the real response: the "503 after the firewall accepted the
block" a client cannot tell from a failure. Rules never apply to `/_lab/*`. They persist
in SQLite; the random sequence restarts from its seed when the lab restarts or the rule
is re-added.
"""

from __future__ import annotations

import fnmatch
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from lab.store import Store


class FaultSpec(BaseModel):
    route: str = Field(min_length=1)
    method: str | None = None
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    error_status: int = Field(default=503, ge=500, le=599)
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    status: int | None = Field(default=None, ge=400, le=499)
    seed: int = 0
    count: int | None = Field(default=None, ge=1)
    after_apply: bool = False
    skip: int = Field(default=0, ge=0)  # let this many matching requests through first

    @field_validator("method")
    @classmethod
    def _upper(cls, v: str | None) -> str | None:
        return v.upper() if v else None

    @model_validator(mode="after")
    def _regex_compiles(self) -> FaultSpec:
        if self.route.startswith("^"):
            try:
                re.compile(self.route)
            except re.error as exc:
                raise ValueError(f"route is not a valid regular expression: {exc}") from exc
        return self


@dataclass
class FaultRule:
    id: int
    spec: FaultSpec
    rng: random.Random = field(repr=False)
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.spec.method and self.spec.method != method:
            return False
        if self.spec.count is not None and self.hits >= self.spec.count + self.spec.skip:
            return False
        route = self.spec.route
        if route.startswith("^"):
            return re.search(route, path) is not None
        return fnmatch.fnmatchcase(path, route)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, **self.spec.model_dump(), "hits": self.hits}


@dataclass
class Decision:
    latency_ms: int = 0
    status: int | None = None
    after_apply: bool = False  # the request ran; only the answer is replaced by `status`


class FaultBook:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.rules: list[FaultRule] = []
        self.reload()

    def reload(self) -> None:
        self.rules = []
        for fid, body in self.store.db.execute("SELECT id, body FROM faults ORDER BY id"):
            spec = FaultSpec.model_validate(json.loads(body))
            self.rules.append(FaultRule(fid, spec, random.Random(spec.seed)))

    def add(self, spec: FaultSpec) -> FaultRule:
        cur = self.store.db.execute(
            "INSERT INTO faults(body) VALUES (?)", (spec.model_dump_json(),)
        )
        rule = FaultRule(int(cur.lastrowid or 0), spec, random.Random(spec.seed))
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.store.db.execute("DELETE FROM faults")
        self.rules = []

    def decide(self, method: str, path: str) -> Decision:
        decision = Decision()
        if path.startswith("/_lab/") or path == "/_lab":
            return decision
        for rule in self.rules:
            if not rule.matches(method, path):
                continue
            rule.hits += 1
            if rule.hits <= rule.spec.skip:
                continue
            decision.latency_ms += rule.spec.latency_ms
            if rule.spec.status is not None:
                decision.status = rule.spec.status
                decision.after_apply = rule.spec.after_apply
                break
            if rule.spec.error_rate > 0 and rule.rng.random() < rule.spec.error_rate:
                decision.status = rule.spec.error_status
                decision.after_apply = rule.spec.after_apply
                break
        return decision
