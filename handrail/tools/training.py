"""Security-awareness training: modules and enrollments."""

from __future__ import annotations

from typing import Protocol

from handrail.tools.http import LabHTTP, ToolModel, seg


class TrainingModule(ToolModel):
    id: str
    title: str
    minutes: int = 0


class Enrollment(ToolModel):
    user: str
    module: str
    reason: str = ""
    enrolled_at: str
    due_at: str | None = None


class Training(Protocol):
    async def list_modules(self) -> list[TrainingModule]: ...
    async def list_enrollments(self, *, user: str | None = None,
                               module: str | None = None) -> list[Enrollment]: ...
    async def get_enrollment(self, user: str, module: str) -> Enrollment | None: ...
    async def enroll(self, user: str, module: str, *, reason: str = "",
                     idempotency_key: str | None = None) -> Enrollment: ...
    async def unenroll(self, user: str, module: str, *,
                       idempotency_key: str | None = None) -> None: ...


class LabTraining:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def list_modules(self) -> list[TrainingModule]:
        data = await self.http.json("GET", "/training/modules")
        return [TrainingModule.model_validate(m) for m in data["modules"]]

    async def list_enrollments(self, *, user: str | None = None,
                               module: str | None = None) -> list[Enrollment]:
        data = await self.http.json("GET", "/training/enrollments",
                                    params={"user": user, "module": module})
        return [Enrollment.model_validate(e) for e in data["enrollments"]]

    async def get_enrollment(self, user: str, module: str) -> Enrollment | None:
        data = await self.http.get_or_none(f"/training/enrollments/{seg(user)}/{seg(module)}")
        return Enrollment.model_validate(data) if data is not None else None

    async def enroll(self, user: str, module: str, *, reason: str = "",
                     idempotency_key: str | None = None) -> Enrollment:
        data = await self.http.json("POST", "/training/enrollments",
                                    json={"user": user, "module": module, "reason": reason},
                                    idempotency_key=idempotency_key)
        return Enrollment.model_validate(data)

    async def unenroll(self, user: str, module: str, *,
                       idempotency_key: str | None = None) -> None:
        await self.http.request("DELETE", f"/training/enrollments/{seg(user)}/{seg(module)}",
                                idempotency_key=idempotency_key)
