"""Case management: incident cases with artefacts and notes.

A case file quotes the attacker (a phishing subject, an EDR host name, a DLP file name) and is
read by analysts in the case tool's UI, its exports and terminals. What Handrail writes is
made text first (`handrail.shown`): a title is one line, a description or note keeps its line
breaks, and controls and bidi overrides are written as escapes, never as themselves. An
artefact's `ref` is a key (a mailbox id, a parse reference) and stays verbatim.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import Field

from handrail.shown import lines, one_line
from handrail.tools.http import LabHTTP, ToolModel, seg

Severity = Literal["low", "medium", "high", "critical"]


class CaseArtefact(ToolModel):
    id: str
    kind: str
    ref: str
    description: str = ""
    added_at: str


class CaseNote(ToolModel):
    id: str
    author: str
    text: str
    at: str


class Closure(ToolModel):
    resolution: str
    at: str


class Case(ToolModel):
    id: str
    title: str
    description: str = ""
    severity: Severity = "medium"
    status: Literal["open", "closed"]
    run_id: str | None = None
    created_at: str
    artefacts: list[CaseArtefact] = Field(default_factory=list)
    notes: list[CaseNote] = Field(default_factory=list)
    closure: Closure | None = None


class Cases(Protocol):
    async def create_case(self, title: str, *, description: str = "",
                          severity: Severity = "medium", run_id: str | None = None,
                          idempotency_key: str | None = None) -> Case: ...
    async def get_case(self, case_id: str) -> Case: ...
    async def list_cases(self, *, status: Literal["open", "closed"] | None = None,
                         run_id: str | None = None) -> list[Case]: ...
    async def add_artefact(self, case_id: str, kind: str, ref: str, *, description: str = "",
                           idempotency_key: str | None = None) -> CaseArtefact: ...
    async def remove_artefact(self, case_id: str, artefact_id: str, *,
                              idempotency_key: str | None = None) -> None: ...
    async def add_note(self, case_id: str, author: str, text: str, *,
                       idempotency_key: str | None = None) -> CaseNote: ...
    async def close_case(self, case_id: str, resolution: str, *,
                         idempotency_key: str | None = None) -> Case: ...
    async def reopen_case(self, case_id: str, *, idempotency_key: str | None = None) -> Case: ...


class LabCases:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def create_case(self, title: str, *, description: str = "",
                          severity: Severity = "medium", run_id: str | None = None,
                          idempotency_key: str | None = None) -> Case:
        data = await self.http.json("POST", "/cases", json={
            "title": one_line(title), "description": lines(description), "severity": severity,
            "run_id": run_id}, idempotency_key=idempotency_key)
        return Case.model_validate(data)

    async def get_case(self, case_id: str) -> Case:
        return Case.model_validate(await self.http.json("GET", f"/cases/{seg(case_id)}"))

    async def list_cases(self, *, status: Literal["open", "closed"] | None = None,
                         run_id: str | None = None) -> list[Case]:
        data = await self.http.json("GET", "/cases", params={"status": status, "run_id": run_id})
        return [Case.model_validate(c) for c in data["cases"]]

    async def add_artefact(self, case_id: str, kind: str, ref: str, *, description: str = "",
                           idempotency_key: str | None = None) -> CaseArtefact:
        data = await self.http.json("POST", f"/cases/{seg(case_id)}/artefacts",
                                    json={"kind": kind, "ref": ref, "description": lines(description)},
                                    idempotency_key=idempotency_key)
        return CaseArtefact.model_validate(data)

    async def remove_artefact(self, case_id: str, artefact_id: str, *,
                              idempotency_key: str | None = None) -> None:
        await self.http.request("DELETE", f"/cases/{seg(case_id)}/artefacts/{seg(artefact_id)}",
                                idempotency_key=idempotency_key)

    async def add_note(self, case_id: str, author: str, text: str, *,
                       idempotency_key: str | None = None) -> CaseNote:
        data = await self.http.json("POST", f"/cases/{seg(case_id)}/notes",
                                    json={"author": one_line(author), "text": lines(text)},
                                    idempotency_key=idempotency_key)
        return CaseNote.model_validate(data)

    async def close_case(self, case_id: str, resolution: str, *,
                         idempotency_key: str | None = None) -> Case:
        data = await self.http.json("POST", f"/cases/{seg(case_id)}/close",
                                    json={"resolution": lines(resolution)},
                                    idempotency_key=idempotency_key)
        return Case.model_validate(data)

    async def reopen_case(self, case_id: str, *, idempotency_key: str | None = None) -> Case:
        data = await self.http.json("POST", f"/cases/{seg(case_id)}/reopen",
                                    idempotency_key=idempotency_key)
        return Case.model_validate(data)
