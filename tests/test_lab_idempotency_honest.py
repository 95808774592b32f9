"""The lab keeps an idempotency answer only for a request its handler really ran (issue 15, item 7)."""

from __future__ import annotations

import json

import pytest

from handrail.tools.errors import Unavailable
from lab.testing import in_process_lab

pytestmark = pytest.mark.unit

IP = "203.0.113.41"


@pytest.fixture
async def lab(tmp_path):
    async with in_process_lab(tmp_path) as lab:
        yield lab


async def _asgi_post_then_disconnect(app, token: str, key: str) -> list[dict]:
    """Drive the app as a server would for a client that sends half a body and goes away."""
    body = json.dumps({"value": IP, "comment": "c2"}).encode()
    incoming = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/firewall/egress", "raw_path": b"/firewall/egress", "query_string": b"",
        "root_path": "", "server": ("lab", 80), "client": ("127.0.0.1", 5000),
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"idempotency-key", key.encode()),
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    await app(scope, receive, send)
    return sent


async def test_a_client_that_went_away_never_poisons_its_key(lab):
    await _asgi_post_then_disconnect(lab.app, lab.settings.lab_token, "key-gone")
    assert await lab.tools.firewall.egress_get(IP) is None  # the handler never ran
    entry = await lab.tools.firewall.egress_add(IP, "c2", idempotency_key="key-gone")
    assert entry.value == IP


async def test_a_body_the_lab_could_not_parse_is_not_kept_under_the_key(lab):
    async with lab.client(lab.settings.lab_token) as raw:
        bad = await raw.post("/firewall/egress", content=b"{not json",
                             headers={"Idempotency-Key": "key-bad", "Content-Type": "application/json"})
        assert bad.status_code == 422
        good = await raw.post("/firewall/egress", json={"value": IP, "comment": "x"},
                              headers={"Idempotency-Key": "key-bad"})
        assert good.status_code == 201


async def test_after_apply_fault_changes_the_tool_and_the_retry_replays_success(lab):
    await lab.tools.lab_set_fault("/firewall/egress", method="POST", error_rate=1.0, count=1, after_apply=True)
    with pytest.raises(Unavailable):
        await lab.tools.firewall.egress_add(IP, "c2", idempotency_key="key-lost")
    assert (await lab.tools.firewall.egress_get(IP)) is not None  # the firewall did accept it
    entry = await lab.tools.firewall.egress_add(IP, "c2", idempotency_key="key-lost")
    assert entry.value == IP
