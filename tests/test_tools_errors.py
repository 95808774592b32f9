"""The HTTP base maps every failure to a typed, honest, secret-free ToolError."""

from __future__ import annotations

import pickle

import httpx
import pytest

from handrail.ops.config import load_settings
from handrail.tools import ToolClients
from handrail.tools.errors import Conflict, Invalid, NotFound, ToolError, Unauthorized, Unavailable

pytestmark = pytest.mark.unit

TOKEN = "s3cret-token-value"


def clients(handler) -> ToolClients:
    settings = load_settings({"HANDRAIL_HOME": "/tmp/unused", "HANDRAIL_LAB_TOKEN": TOKEN})
    return ToolClients.from_settings(settings, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(("status", "cls", "retryable"), [
    (401, Unauthorized, False), (403, Unauthorized, False), (404, NotFound, False),
    (409, Conflict, False), (422, Invalid, False), (400, Invalid, False),
    (418, ToolError, False), (500, Unavailable, True), (502, Unavailable, True),
    (503, Unavailable, True),
])
async def test_status_mapping(status, cls, retryable):
    def handler(request):
        return httpx.Response(status, json={"error": f"Refused with {TOKEN}", "code": "x"})

    async with clients(handler) as tools:
        with pytest.raises(cls) as exc:
            await tools.firewall.egress_list()
    assert type(exc.value) is cls
    assert exc.value.status == status and exc.value.retryable is retryable
    assert TOKEN not in str(exc.value) and exc.value.code == "x"


async def test_non_json_error_body_still_gives_a_sentence():
    async with clients(lambda r: httpx.Response(502, text="<html>bad gateway</html>")) as tools:
        with pytest.raises(Unavailable) as exc:
            await tools.edr.get_host("x")
    assert str(exc.value) == "GET /edr/hosts/x failed with HTTP 502."


async def test_connection_errors_and_timeouts_are_retryable():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    async with clients(refuse) as tools:
        with pytest.raises(Unavailable) as exc:
            await tools.dns.list_sinkholes()
        assert exc.value.retryable and exc.value.status is None
        assert exc.value.code == "unreachable" and TOKEN not in str(exc.value)
    async with clients(slow) as tools:
        with pytest.raises(Unavailable) as exc:
            await tools.dns.list_sinkholes()
        assert exc.value.code == "timeout"


async def test_requests_carry_token_idempotency_key_and_encoded_path():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json={"removed": "198.51.100.0/24"})

    async with clients(handler) as tools:
        await tools.firewall.egress_remove("198.51.100.0/24", idempotency_key="run-1:step-2")
    req = seen[0]
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.headers["idempotency-key"] == "run-1:step-2"
    assert req.url.raw_path == b"/firewall/egress/198.51.100.0%2F24"


def test_errors_pickle_with_their_attributes():
    err = pickle.loads(pickle.dumps(Unavailable("Down.", status=503, code="fault_injected")))
    assert isinstance(err, Unavailable)
    assert (err.status, err.code, err.retryable, str(err)) == (503, "fault_injected", True,
                                                               "Down.")
