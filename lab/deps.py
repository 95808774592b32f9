"""FastAPI dependencies shared by the tool routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from lab.store import Store


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]
