"""The RPZ sinkhole backend against a real Unbound: the lab's DNS contract, answered by a resolver."""

from __future__ import annotations

import dns.asyncresolver
import dns.resolver
import pytest

from handrail.ops.tools_config import RpzDns
from handrail.tools.dns_rpz import RpzSinkhole
from handrail.tools.errors import Conflict, Invalid, NotFound, ToolError, Unavailable
from handrail.tools.journal import Journal
from tests.backend_servers import unbound

pytestmark = pytest.mark.backends

AWARENESS = "10.20.0.80"


@pytest.fixture
def server(tmp_path):
    with unbound(tmp_path / "unbound", local_data=("www.shop.example. A 192.0.2.10",)) as srv:
        yield srv


def client(srv, tmp_path, **over) -> RpzSinkhole:
    fields = dict(zone_file=srv["zone_file"], reload_command=srv["reload"], flush_command=srv["flush"],
                  resolver=f"127.0.0.1:{srv['port']}", awareness_address=AWARENESS)
    cfg = RpzDns(backend="rpz", **{**fields, **over})
    return RpzSinkhole(cfg, Journal(tmp_path / "journal.db"))


async def answer(port: int, name: str) -> list[str] | str:
    r = dns.asyncresolver.Resolver(configure=False)
    r.nameservers, r.port, r.lifetime, r.cache = ["127.0.0.1"], port, 3.0, None
    try:
        return sorted(rd.address for rd in await r.resolve(name, "A"))
    except dns.resolver.NXDOMAIN:
        return "NXDOMAIN"


async def test_sinkhole_answered_by_unbound_and_rolled_back(server, tmp_path):
    d = client(server, tmp_path)
    port = server["port"]
    assert await answer(port, "evil-login.example") == "NXDOMAIN"
    assert await answer(port, "www.shop.example") == ["192.0.2.10"]
    assert await d.get_sinkhole("evil-login.example") is None  # before-state

    s = await d.sinkhole("Evil-Login.Example", comment="phish run-1")
    assert s.domain == "evil-login.example" and s.address == AWARENESS and s.comment == "phish run-1"
    assert await answer(port, "evil-login.example") == [AWARENESS]
    assert await answer(port, "a.b.evil-login.example") == [AWARENESS]
    assert await d.get_sinkhole("evil-login.example") == s  # after-state, read back from the zone
    r = await d.resolve("www.evil-login.example")
    assert r.sinkholed and r.sinkhole == "evil-login.example" and r.addresses == [AWARENESS]

    shop = await d.sinkhole("shop.example", address="10.20.0.81")
    assert await answer(port, "www.shop.example") == ["10.20.0.81"]
    assert [x.domain for x in await d.list_sinkholes()] == ["evil-login.example", "shop.example"]
    serial_before = server["zone_file"].read_text()

    await d.remove_sinkhole("shop.example")
    assert await answer(port, "www.shop.example") == ["192.0.2.10"]  # the original answer is back
    await d.remove_sinkhole("evil-login.example")
    assert await answer(port, "evil-login.example") == "NXDOMAIN"
    assert await d.list_sinkholes() == [] and shop.domain not in server["zone_file"].read_text()
    assert server["zone_file"].read_text() != serial_before


async def test_refusals_are_definite(server, tmp_path):
    d = client(server, tmp_path)
    await d.sinkhole("evil.example")
    with pytest.raises(Conflict) as exc:
        await d.sinkhole("evil.example")
    assert not exc.value.retryable
    for bad in ("not a domain", "", "-x.example", "a..example"):
        with pytest.raises(Invalid):
            await d.sinkhole(bad)
    for address in ("nope", "fe80::1%eth0", "10.0.0.1; x", "10.0.0.1\n@ NS evil."):
        with pytest.raises(Invalid):
            await d.sinkhole("ok.example", address=address)
    with pytest.raises(NotFound):
        await d.remove_sinkhole("never.example")


async def test_idempotent_replay(server, tmp_path):
    d = client(server, tmp_path)
    first = await d.sinkhole("evil.example", comment="c", idempotency_key="run1-step1")
    zone = server["zone_file"].read_text()
    assert await d.sinkhole("evil.example", comment="c", idempotency_key="run1-step1") == first
    assert server["zone_file"].read_text() == zone  # replay touched nothing
    await d.remove_sinkhole("evil.example", idempotency_key="run1-step1:revert")
    await d.remove_sinkhole("evil.example", idempotency_key="run1-step1:revert")  # replay: no NotFound
    with pytest.raises(Invalid) as exc:
        await d.sinkhole("other.example", idempotency_key="run1-step1")
    assert exc.value.code == "idempotency_key_reused"


async def test_failed_reload_is_retryable_and_the_retry_converges(server, tmp_path):
    broken = client(server, tmp_path, reload_command=["false"])
    with pytest.raises(Unavailable) as exc:
        await broken.sinkhole("evil.example", idempotency_key="k1")
    assert exc.value.retryable
    fixed = client(server, tmp_path)  # same journal: the retry resumes the pending call
    entry = await fixed.sinkhole("evil.example", idempotency_key="k1")
    assert entry.domain == "evil.example"
    assert await answer(server["port"], "evil.example") == [AWARENESS]


async def test_unreachable_resolver_is_retryable(server, tmp_path):
    from tests.backend_servers import free_port

    d = client(server, tmp_path, resolver=f"127.0.0.1:{free_port()}", timeout=0.5)
    with pytest.raises(Unavailable):
        await d.resolve("evil.example")


async def test_hostile_names_and_comments_are_refused_or_kept_as_data(server, tmp_path):
    d = client(server, tmp_path)
    long = ".".join(["a" * 60] * 4) + ".ex"  # a valid 247-character name, too long once under the zone
    for bad in (long, "-flush.example", "a b.example", "a;b.example", 'a"b.example', "a\nb.example",
                "{zone}.example", "a..example", "x" * 5000):
        with pytest.raises(Invalid):
            await d.sinkhole(bad)
    for comment in ("é" * 200, "€" * 150, 'a"b\\c;d $ORIGIN evil.\n@ NS x. ( ) \x00\x1b[31m'):
        s = await d.sinkhole("evil.example", comment=comment)
        assert len(s.comment.encode()) <= 255 and "\n" not in s.comment and "\x00" not in s.comment
        assert await d.get_sinkhole("evil.example") == s  # the before-state a rollback restores
        assert await answer(server["port"], "evil.example") == [AWARENESS]  # Unbound loaded the zone
        await d.remove_sinkhole("evil.example")
    assert "$ORIGIN evil." not in server["zone_file"].read_text().split("\n", 1)[1]
    s = await d.sinkhole("bücher.example", comment="idn")
    assert s.domain == "xn--bcher-kva.example"
    assert await answer(server["port"], "www.xn--bcher-kva.example") == [AWARENESS]


async def test_records_handrail_did_not_write_survive_its_rewrites(tmp_path):
    """An operator's own policy in the RPZ zone (NXDOMAIN for a name) is kept by every rewrite."""
    with unbound(tmp_path / "unbound", local_data=("blocked.example. A 192.0.2.20",)) as srv:
        srv["zone_file"].write_text(srv["zone_file"].read_text() + "blocked.example CNAME .\n"
                                    "*.blocked.example CNAME .\n")
        d = client(srv, tmp_path)
        await d.sinkhole("evil.example")
        assert await answer(srv["port"], "blocked.example") == "NXDOMAIN"
        assert await answer(srv["port"], "www.blocked.example") == "NXDOMAIN"
        await d.remove_sinkhole("evil.example")
        assert await answer(srv["port"], "blocked.example") == "NXDOMAIN"
        assert await d.list_sinkholes() == []
        zone = srv["zone_file"].read_text()
        assert "blocked.example" in zone and zone.count(" NS ") == 1


async def test_reload_the_resolver_refuses_is_definite_and_says_why(server, tmp_path):
    """unbound-control prints the server's refusal on stdout and exits 1: a zone the resolver does not
    serve is a definite error naming the cause, not an endless retry of `failed: 1`."""
    d = client(server, tmp_path, zone="rpz.not-configured.", flush_command=[])
    with pytest.raises(ToolError) as exc:
        await d.sinkhole("evil.example", idempotency_key="k-refused")
    assert not exc.value.retryable and "no auth-zone rpz.not-configured" in str(exc.value)
    broken = client(server, tmp_path, reload_command=server["reload"][:3] + ["-s", "127.0.0.1@1", "status"])
    with pytest.raises(Unavailable) as exc:  # the resolver does not answer at all: worth a retry
        await broken.sinkhole("other.example", idempotency_key="k-down")
    assert exc.value.retryable and "Connection refused" in str(exc.value)
