"""The lab: one FastAPI app that plays a mid-size enterprise's security tools.

`create_app(settings)` opens (or creates and seeds) the SQLite estate at
`settings.lab_db_path`, mounts one router per tool (`lab.registry.TOOLS`) plus `/_lab`,
and wraps them in `LabMiddleware` (auth, faults, idempotency, call log). Every error is
`{"error": "<one sentence>", "code": "<short_code>"}`.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from handrail.ops.config import Settings, load_settings
from lab import admin, notifications
from lab.errors import LabError, error_response
from lab.faults import FaultBook
from lab.middleware import BODY_REJECTED, LabMiddleware
from lab.registry import TOOLS, seed_all
from lab.store import Store

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "too_large",
                 415: "unsupported_media_type", 422: "invalid_input"}


def _validation_sentence(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "The request is malformed."
    first = errors[0]
    loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path")]
    where = ".".join(loc)
    msg = str(first.get("msg", "is invalid")).rstrip(".")
    if first.get("type") == "missing":
        msg = "is required"
    elif first.get("type") == "json_invalid":
        return "The request body is not valid JSON."
    return f"The request is malformed: {where} {msg}." if where else f"The request is malformed: {msg}."


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    store = Store(settings.lab_db_path)
    if store.is_empty():
        seed_all(store)
    faults = FaultBook(store)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        store.close()

    app = FastAPI(title="Handrail lab", version="1", lifespan=lifespan, docs_url="/_lab/docs",
                  openapi_url="/_lab/openapi.json", redoc_url=None)
    app.state.store = store
    app.state.faults = faults
    app.state.settings = settings

    @app.exception_handler(LabError)
    async def _lab_error(request: Request, exc: LabError):
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:
            request.scope[BODY_REJECTED] = True  # "error parsing the body": never an answer to keep
        code = _STATUS_CODES.get(exc.status_code, "error")
        if exc.status_code == 404:
            message = f"There is no route {request.method} {request.url.path}."
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        else:
            detail = exc.detail if isinstance(exc.detail, str) else "The request failed"
            message = detail.rstrip(".") + "."
        return error_response(exc.status_code, code, message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        request.scope[BODY_REJECTED] = True
        return error_response(422, "invalid_input", _validation_sentence(exc))

    app.include_router(admin.router)
    app.include_router(notifications.admin_router)  # the notification sink: not a tool, not in the state
    app.include_router(notifications.router)
    for tool in TOOLS:
        app.include_router(tool.router)
    app.add_middleware(LabMiddleware, store=store, faults=faults, token=settings.lab_token,
                       admin_token=settings.lab_admin_token)
    return app
