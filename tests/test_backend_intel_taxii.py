"""The TAXII 2.1 intel backend against a real medallion server, loaded over TAXII itself."""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx
import pytest

from handrail.intel.normalize import parse_feed
from handrail.ops.tools_config import TaxiiIntel as TaxiiConfig
from handrail.tools.errors import Invalid, NotFound, Unauthorized, Unavailable
from handrail.tools.intel_taxii import TAXII_JSON, TaxiiIntel
from tests.backend_servers import free_port, medallion
from tests.support import FIXTURES

pytestmark = pytest.mark.backends

STIX = FIXTURES / "stix"


def indicator(pattern: str, n: int) -> dict:
    stamp = f"2026-01-0{1 + n % 9}T00:00:00.000Z"
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_URL, pattern)}",
            "created": stamp, "modified": stamp, "valid_from": stamp, "pattern_type": "stix", "pattern": pattern,
            "name": f"synthetic {n}"}


SYNTHETIC = [indicator(f"[ipv4-addr:value = '203.0.113.{i}']", i) for i in range(1, 12)] + [
    indicator("[domain-name:value = 'evil-login.example']", 12),
    indicator("[url:value = 'http://evil-login.example/a']", 13),
    {"type": "malware", "spec_version": "2.1", "id": "malware--" + str(uuid.uuid4()), "created": "2026-01-01T00:00:00Z",
     "modified": "2026-01-01T00:00:00Z", "name": "not an indicator", "is_family": False},
]


def post(srv, title: str, objects: list[dict]) -> dict:
    url = f"{srv['api_root']}collections/{srv['collections'][title]}/objects/"
    r = httpx.post(url, json={"objects": objects}, auth=(srv["user"], srv["password"]),
                   headers={"Accept": TAXII_JSON, "Content-Type": TAXII_JSON})
    r.raise_for_status()
    return r.json()


@pytest.fixture
def server(tmp_path):
    with medallion(tmp_path / "taxii", collections=("phish-indicators", "apt-reports"), page_size=5) as srv:
        yield srv


def client(srv, **over) -> TaxiiIntel:
    fields = dict(api_root=srv["api_root"], username=srv["user"], password=srv["password"], page_size=4,
                  timeout=5, http_feeds=False)
    return TaxiiIntel(TaxiiConfig(backend="taxii", **{**fields, **over}), None)


async def test_collection_pages_into_one_stix_bundle_the_sync_reads(server):
    post(server, "phish-indicators", SYNTHETIC)
    intel = client(server)
    try:
        feeds = {f.name: f for f in await intel.list_feeds()}
        assert set(feeds) == {"taxii:phish-indicators", "taxii:apt-reports"}
        assert all(f.format == "stix" for f in feeds.values())
        body = await intel.fetch_feed("taxii:phish-indicators")  # 13 indicators over pages of 4
        bundle = json.loads(body)
        assert bundle["type"] == "bundle" and len(bundle["objects"]) == 13
        assert {o["type"] for o in bundle["objects"]} == {"indicator"}
        assert await intel.fetch_feed("taxii:phish-indicators") == body  # same content, same bytes
        info = await intel.feed_info("taxii:phish-indicators")
        assert info.sha256 == hashlib.sha256(body).hexdigest() and info.size == len(body)
        parsed = parse_feed(body, feed="taxii:phish-indicators", format="stix")
        assert parsed.report.ipv4 == 11  # every address; the reserved .example names are the sync's to refuse
        assert parsed.report.accepted + parsed.report.rejected + parsed.report.unsupported == 13
        assert (await intel.fetch_feed("taxii:apt-reports")) != body  # an empty collection is an empty bundle
        assert json.loads(await intel.fetch_feed("taxii:apt-reports"))["objects"] == []
    finally:
        await intel.aclose()


@pytest.mark.skipif(not STIX.is_dir(), reason=f"fixture folder {STIX} is absent")
async def test_the_real_stix_bundles_come_back_as_their_indicators(server):
    wanted = {}
    for path in sorted(STIX.glob("*.json")):
        objects = json.loads(path.read_text()).get("objects", [])
        result = post(server, "apt-reports", objects)
        accepted = {s["id"] for s in result.get("successes", [])}
        wanted.update({o["id"]: o for o in objects if o.get("type") == "indicator" and o["id"] in accepted})
    intel = client(server, page_size=10, collections=["apt-reports"])
    try:
        assert [f.name for f in await intel.list_feeds()] == ["taxii:apt-reports"]
        bundle = json.loads(await intel.fetch_feed("taxii:apt-reports"))
        assert {o["id"] for o in bundle["objects"]} == set(wanted) and len(wanted) > 10
        parsed = parse_feed(json.dumps(bundle).encode(), feed="taxii:apt-reports", format="stix")
        assert parsed.report.accepted > 0
    finally:
        await intel.aclose()


async def test_refusals_and_failures(server):
    bad = client(server, password="wrong-taxii-pw")
    with pytest.raises(Unauthorized) as exc:
        await bad.fetch_feed("taxii:phish-indicators")
    assert "wrong-taxii-pw" not in str(exc.value) and not exc.value.retryable
    await bad.aclose()
    intel = client(server)
    with pytest.raises(NotFound):
        await intel.fetch_feed("taxii:no-such-collection")
    with pytest.raises(Invalid):
        await intel.publish_feed("taxii:phish-indicators", b"{}")
    with pytest.raises(NotFound):  # TAXII only: an HTTP feed name is not there
        await intel.fetch_feed("lab-c2")
    await intel.aclose()
    down = client(server, api_root=f"http://127.0.0.1:{free_port()}/api1/")
    with pytest.raises(Unavailable) as exc:
        await down.fetch_feed("taxii:phish-indicators")
    assert exc.value.retryable
    await down.aclose()
