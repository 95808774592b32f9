"""A hostile TAXII server: every answer the client cannot use is a ToolError, one sentence.

The sync catches ToolError per feed (that feed falls back to its last good content); any
other exception failed the feed activity and, through the sync's gather, every feed."""

from __future__ import annotations

import json

import httpx
import pytest

from handrail.ops.tools_config import TaxiiIntel as TaxiiConfig
from handrail.tools.errors import NotFound, ToolError
from handrail.tools.intel_taxii import TaxiiIntel

pytestmark = pytest.mark.unit

COLLECTIONS = json.dumps({"collections": [{"id": "c1", "title": "t", "can_read": True}]}).encode()
DEEP = b"[" * 100_000 + b"]" * 100_000


async def fetch(objects: bytes, collections: bytes = COLLECTIONS) -> bytes:
    """``taxii:t`` from a server (no network: httpx.MockTransport) answering with these bodies."""
    def answer(request: httpx.Request) -> httpx.Response:
        body = collections if request.url.path.endswith("/collections/") else objects
        return httpx.Response(200, content=body)

    cfg = TaxiiConfig(backend="taxii", api_root="https://taxii.invalid/api/", http_feeds=False)
    intel = TaxiiIntel(cfg, None, transport=httpx.MockTransport(answer))
    try:
        return await intel.fetch_feed("taxii:t")
    finally:
        await intel.aclose()


@pytest.mark.parametrize("objects,says", [
    (b"[]", "not a TAXII envelope"),
    (b'"x"', "not a TAXII envelope"),
    (b'{"objects": 5}', "not a TAXII envelope"),
    (b'{"objects": {"id": "indicator--1"}}', "not a TAXII envelope"),
    (DEEP, "nested too deeply"),
    (b'{"objects": [{"id": "indicator--1", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}]}", "nested too deeply"),
])
async def test_an_objects_page_that_is_no_envelope_is_a_tool_error(objects, says):
    with pytest.raises(ToolError, match=says) as exc:
        await fetch(objects)
    assert exc.value.code == "bad_response" and not exc.value.retryable


async def test_objects_without_a_text_id_are_skipped_and_the_rest_kept():
    page = {"objects": [{"id": ["x"], "type": "indicator"}, {"id": {"a": 1}}, 5,
                        {"id": "indicator--1", "type": "indicator", "modified": ["not text"]}]}
    bundle = json.loads(await fetch(json.dumps(page).encode()))
    assert [o["id"] for o in bundle["objects"]] == ["indicator--1"]


@pytest.mark.parametrize("collections,error", [
    (b"[1]", ToolError),
    (b'{"collections": 5}', ToolError),
    (DEEP, ToolError),
    (b'{"collections": [{"id": ["x"], "title": "t", "can_read": true}]}', NotFound),  # skipped: not there
    (b'{"collections": [{"id": "c1", "title": ["t"], "can_read": true}]}', NotFound),
])
async def test_a_collections_answer_it_cannot_use_is_a_tool_error(collections, error):
    with pytest.raises(error):
        await fetch(b"{}", collections)
