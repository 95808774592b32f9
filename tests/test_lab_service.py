"""The lab as a service: state document, persistence, call log, reset, concurrency."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from lab.seed import own_samples
from lab.testing import in_process_lab

pytestmark = pytest.mark.unit

TOOLS = {"mailbox", "dns", "edr", "siem", "firewall", "ips", "proxy", "dlp", "cmdb", "iam",
         "nac", "intel", "cases", "alerts", "training", "takedown"}


@pytest.fixture
async def lab(tmp_path):
    async with in_process_lab(tmp_path) as lab:
        yield lab


async def test_state_document_has_one_key_per_tool_and_a_canonical_hash(lab):
    st = await lab.tools.lab_state()
    assert set(st.tools) == TOOLS
    canonical = json.dumps(st.tools, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert st.hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert (await lab.tools.lab_state(counts_only=True)).hash == st.hash
    # reads do not change the estate
    await lab.tools.edr.list_hosts()
    await lab.tools.dns.resolve("example.com")
    await lab.tools.edr.scan("lt-alice")
    assert (await lab.tools.lab_state()).hash == st.hash


async def test_seed_is_deterministic(tmp_path):
    async with in_process_lab(tmp_path / "a") as a, in_process_lab(tmp_path / "b") as b:
        ha = (await a.tools.lab_state()).hash
        await a.tools.firewall.egress_add("203.0.113.9", "x")
        assert (await a.tools.lab_state()).hash != ha
        assert await a.tools.lab_reset() == ha == (await b.tools.lab_state()).hash


async def test_fresh_seed_without_template(tmp_path):
    from handrail.ops.config import load_settings
    from lab.app import create_app

    settings = load_settings({"HANDRAIL_HOME": str(tmp_path / "deep" / "home")})
    app = create_app(settings)
    try:
        assert settings.lab_db_path.exists()
        assert app.state.store.count("edr", "hosts") > 250
        mode = app.state.store.db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode.lower() == "wal"
    finally:
        app.state.store.close()


async def test_state_survives_restart(tmp_path):
    async with in_process_lab(tmp_path) as lab:
        await lab.tools.firewall.egress_add("203.0.113.9", "before restart",
                                            idempotency_key="restart-key")
        await lab.tools.edr.isolate("lt-bob", reason="x")
        await lab.tools.mailbox.deliver(b"Message-ID: <r@x>\r\nSubject: s\r\n\r\nb")
        before = (await lab.tools.lab_state()).hash
    async with in_process_lab(tmp_path) as lab2:
        assert (await lab2.tools.lab_state()).hash == before
        assert (await lab2.tools.firewall.egress_get("203.0.113.9")) is not None
        # the idempotency key survived too: a replay changes nothing
        again = await lab2.tools.firewall.egress_add("203.0.113.9", "before restart",
                                                     idempotency_key="restart-key")
        assert again.comment == "before restart"
        assert (await lab2.tools.lab_state()).hash == before
        raw = await lab2.tools.mailbox.fetch_raw(
            next(m.id for m in await lab2.tools.mailbox.list_messages() if m.message_id == "<r@x>"))
        assert raw.endswith(b"b")


async def test_call_log_records_tool_calls_newest_last_without_secrets(lab):
    await lab.tools.firewall.egress_list()
    await lab.tools.firewall.egress_add("203.0.113.9", "x", idempotency_key="k1")
    async with lab.client() as anon:
        await anon.get("/edr/hosts")
    await lab.tools.lab_state()
    calls = await lab.tools.lab_calls()
    assert [(c.method, c.path, c.status) for c in calls] == [
        ("GET", "/firewall/egress", 200), ("POST", "/firewall/egress", 201),
        ("GET", "/edr/hosts", 401)]
    assert calls[1].idempotency_key == "k1"
    assert [c.path for c in await lab.tools.lab_calls(limit=1)] == ["/edr/hosts"]
    async with lab.client(lab.settings.lab_admin_token) as c:
        text = (await c.get("/_lab/calls")).text
    assert lab.settings.lab_token not in text and lab.settings.lab_admin_token not in text


async def test_reset_restores_seed_and_clears_calls_keys_and_faults(lab):
    seed = (await lab.tools.lab_state()).hash
    await lab.tools.firewall.egress_add("203.0.113.9", "x", idempotency_key="k")
    await lab.tools.lab_set_fault("/dns/*", status=418)
    assert await lab.tools.lab_reset() == seed
    assert await lab.tools.lab_calls() == []
    assert await lab.tools.lab_faults() == []
    # the key was forgotten: the same key now performs the add again
    await lab.tools.firewall.egress_add("203.0.113.9", "x", idempotency_key="k")
    assert (await lab.tools.lab_state()).hash != seed


async def test_error_shapes(lab):
    async with lab.client(lab.settings.lab_token) as c:
        r = await c.get("/no/such/route")
        assert r.status_code == 404 and set(r.json()) == {"error", "code"}
        r = await c.patch("/firewall/egress")
        assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
        r = await c.post("/alerts", content=b"{not json", headers={"content-type":
                                                                     "application/json"})
        assert r.status_code == 422 and r.json()["error"].endswith(".")
        r = await c.get("/edr/hosts/nope")
        assert r.status_code == 404 and r.json()["code"] == "unknown_host"


async def test_two_hundred_concurrent_requests(lab):
    fw = lab.tools.firewall

    async def add(i: int):
        return await fw.egress_add(f"10.99.{i // 250}.{i % 250}", f"n{i}",
                                   idempotency_key=f"c-{i % 100}")

    results = await asyncio.gather(*(add(i) for i in range(100)),
                                   *(fw.egress_list() for _ in range(50)),
                                   *(add(i) for i in range(50)))
    assert len(results) == 200
    values = {e.value for e in await fw.egress_list()}
    assert {f"10.99.0.{i}" for i in range(100)} <= values


async def test_mailbox_holds_our_own_samples_without_fixtures(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDRAIL_FIXTURES", str(tmp_path / "nowhere"))
    async with in_process_lab(tmp_path / "home") as lab:
        messages = await lab.tools.mailbox.list_messages()
        assert len(messages) == len(own_samples()) >= 6
        assert all(m.message_id.startswith("<hr-sample-") for m in messages)
        assert len(await lab.tools.edr.list_hosts()) > 250
