"""Takedown provider: submit malicious sites with evidence, list, withdraw.

The URL is evidence for the provider; nothing here ever contacts it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from pydantic import Field

from handrail.tools.http import LabHTTP, ToolModel, seg


class Evidence(ToolModel):
    kind: str
    ref: str
    description: str = ""


class Submission(ToolModel):
    id: str
    url: str
    domain: str
    reason: str
    evidence: list[Evidence] = Field(default_factory=list)
    status: str = "submitted"
    submitted_at: str


class Takedown(Protocol):
    async def submit(self, url: str, *, reason: str, evidence: Iterable[Evidence] = (),
                     idempotency_key: str | None = None) -> Submission: ...
    async def list_submissions(self) -> list[Submission]: ...
    async def get_submission(self, submission_id: str) -> Submission: ...
    async def find_by_url(self, url: str) -> Submission | None: ...
    async def withdraw(self, submission_id: str, *,
                       idempotency_key: str | None = None) -> None: ...


class LabTakedown:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def submit(self, url: str, *, reason: str, evidence: Iterable[Evidence] = (),
                     idempotency_key: str | None = None) -> Submission:
        payload = {"url": url, "reason": reason,
                   "evidence": [Evidence.model_validate(e).model_dump() for e in evidence]}
        data = await self.http.json("POST", "/takedown/submissions", json=payload,
                                    idempotency_key=idempotency_key)
        return Submission.model_validate(data)

    async def list_submissions(self) -> list[Submission]:
        data = await self.http.json("GET", "/takedown/submissions")
        return [Submission.model_validate(s) for s in data["submissions"]]

    async def get_submission(self, submission_id: str) -> Submission:
        return Submission.model_validate(
            await self.http.json("GET", f"/takedown/submissions/{seg(submission_id)}"))

    async def find_by_url(self, url: str) -> Submission | None:
        return next((s for s in await self.list_submissions() if s.url == url.strip()), None)

    async def withdraw(self, submission_id: str, *, idempotency_key: str | None = None) -> None:
        await self.http.request("DELETE", f"/takedown/submissions/{seg(submission_id)}",
                                idempotency_key=idempotency_key)
