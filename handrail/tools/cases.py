"""Case management: incident cases with artefacts and notes."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import Field

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
            "title": title, "description": description, "severity": severity,
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
                                    json={"kind": kind, "ref": ref, "description": description},
                                    idempotency_key=idempotency_key)
        return CaseArtefact.model_validate(data)

    async def remove_artefact(self, case_id: str, artefact_id: str, *,
                              idempotency_key: str | None = None) -> None:
        await self.http.request("DELETE", f"/cases/{seg(case_id)}/artefacts/{seg(artefact_id)}",
                                idempotency_key=idempotency_key)

    async def add_note(self, case_id: str, author: str, text: str, *,
                       idempotency_key: str | None = None) -> CaseNote:
        data = await self.http.json("POST", f"/cases/{seg(case_id)}/notes",
                                    json={"author": author, "text": text},
                                    idempotency_key=idempotency_key)
        return CaseNote.model_validate(data)

    async def close_case(self, case_id: str, resolution: str, *,
                         idempotency_key: str | None = None) -> Case:
        data = await self.http.json("POST", f"/cases/{seg(case_id)}/close",
                                    json={"resolution": resolution},
                                    idempotency_key=idempotency_key)
        return Case.model_validate(data)

    async def reopen_case(self, case_id: str, *, idempotency_key: str | None = None) -> Case:
        data = await self.http.json("POST", f"/cases/{seg(case_id)}/reopen",
                                    idempotency_key=idempotency_key)
        return Case.model_validate(data)
