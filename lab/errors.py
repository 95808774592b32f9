"""Errors the lab answers with: one JSON shape, `{"error": "<one sentence>", "code": "<short>"}`.

Tool modules raise `LabError` (or the helpers below); `lab.app` turns it, FastAPI's own
HTTP errors and request-validation errors into that shape so clients map on status alone.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse


class LabError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(message: str, code: str = "not_found") -> LabError:
    return LabError(404, code, message)


def conflict(message: str, code: str = "conflict") -> LabError:
    return LabError(409, code, message)


def invalid(message: str, code: str = "invalid_input") -> LabError:
    return LabError(422, code, message)


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status)
