"""FastAPI dependencies shared by the tool routers."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute

from lab.store import Store


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]


class FastJSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class LabRoute(APIRoute):
    """Serialises a handler's plain dict/list result with `json.dumps` (handlers return
    JSON-ready data already), skipping FastAPI's much slower generic encoder."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        status = kwargs.get("status_code") or 200

        @functools.wraps(endpoint)
        async def fast(*args: Any, **kw: Any) -> Any:
            result = await endpoint(*args, **kw)
            if isinstance(result, dict | list):
                return FastJSON(result, status_code=status)
            return result  # a Response, or text for a route with its own response_class

        super().__init__(path, fast, **kwargs)
