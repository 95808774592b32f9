"""The nftables egress backend in a network namespace the test creates: the lab's firewall
contract, and packets really dropped (never the host's own ruleset)."""

from __future__ import annotations

import subprocess

import pytest

from handrail.ops.tools_config import NftFirewall as NftConfig
from handrail.tools.errors import Conflict, Invalid, NotFound, ToolError, Unauthorized, Unavailable
from handrail.tools.firewall_nft import NftFirewall
from handrail.tools.journal import Journal
from tests.backend_servers import netns, tcp_verdict

pytestmark = pytest.mark.backends


@pytest.fixture
def ns():
    with netns() as name:
        yield name


def client(ns: str, tmp_path, **over) -> NftFirewall:
    cfg = NftConfig(backend="nftables", **{"nft_command": ["ip", "netns", "exec", ns, "nft"], **over})
    return NftFirewall(cfg, Journal(tmp_path / "journal.db"))


async def test_block_drops_egress_and_unblock_restores_it(ns, tmp_path):
    subprocess.run(["ip", "-n", ns, "addr", "add", "10.99.0.1/32", "dev", "lo"], check=True)
    fw = client(ns, tmp_path)
    assert await fw.egress_get("10.99.0.1") is None  # before-state (creates the table)
    assert tcp_verdict(ns, "10.99.0.1") == "refused"
    entry = await fw.egress_add("10.99.0.1", "phish C2 run-1")
    assert entry.value == "10.99.0.1" and entry.comment == "phish C2 run-1" and entry.added_at
    assert tcp_verdict(ns, "10.99.0.1") == "dropped"
    assert (await fw.egress_get("10.99.0.1")) == entry  # after-state, read from the set
    await fw.egress_remove("10.99.0.1")
    assert tcp_verdict(ns, "10.99.0.1") == "refused"
    assert await fw.egress_get("10.99.0.1") is None


async def test_firewall_contract(ns, tmp_path):
    fw = client(ns, tmp_path)
    await fw.egress_add("203.0.113.9", "phish C2")
    net = await fw.egress_add("198.51.100.0/24", "range")
    assert (await fw.egress_get("198.51.100.0/24")) == net
    v6 = await fw.egress_add("2001:DB8::/32", "v6")
    assert v6.value == "2001:db8::/32"
    host6 = await fw.egress_add("2001:db9::1", "v6 host")
    assert host6.value == "2001:db9::1"
    with pytest.raises(Conflict) as exc:
        await fw.egress_add("203.0.113.9", "again")
    assert exc.value.status == 409 and not exc.value.retryable
    with pytest.raises(Conflict):  # inside a blocked network: the kernel refuses the overlap
        await fw.egress_add("198.51.100.7", "inside")
    for bad in ("not-an-ip", "198.51.100.1/24", "300.1.1.1"):
        with pytest.raises(Invalid):
            await fw.egress_add(bad, "x")
    edl = (await fw.edl()).splitlines()
    assert edl == sorted(e.value for e in await fw.egress_list())
    assert set(edl) == {"203.0.113.9", "198.51.100.0/24", "2001:db8::/32", "2001:db9::1"}
    await fw.egress_remove("198.51.100.0/24")
    with pytest.raises(NotFound):
        await fw.egress_remove("198.51.100.0/24")
    bulk = await fw.egress_add_many(["192.0.2.1", "203.0.113.9", "192.0.2.128/25"], "feed")
    assert bulk == {"added": ["192.0.2.1", "192.0.2.128/25"], "already": ["203.0.113.9"]}
    assert await fw.egress_lookup_many(["192.0.2.1", "192.0.2.2"]) == ["192.0.2.1"]
    gone = await fw.egress_remove_many(["192.0.2.1", "192.0.2.2"])
    assert gone == {"removed": ["192.0.2.1"], "absent": ["192.0.2.2"]}


async def test_bulk_with_an_address_inside_a_network_of_the_same_batch(ns, tmp_path):
    fw = client(ns, tmp_path)
    feed = ["91.92.241.17", "91.92.240.0/22", "2001:db8:1::5", "2001:db8::/32", "203.0.113.0/24"]
    assert await fw.egress_add_many(feed, "intel") == {"added": feed, "already": []}
    assert {e.value for e in await fw.egress_list()} == {"91.92.240.0/22", "2001:db8::/32", "203.0.113.0/24"}
    assert await fw.egress_lookup_many(feed + ["91.92.244.1"]) == feed  # covered counts as blocked
    again = await fw.egress_add_many(["91.92.242.9", "198.51.100.9"], "intel")
    assert again == {"added": ["198.51.100.9"], "already": ["91.92.242.9"]}
    with pytest.raises(Conflict, match="overlaps 203.0.113.0/24"):  # a wider network than an element
        await fw.egress_add_many(["203.0.112.0/23"], "intel")
    await fw.egress_remove_many(feed + ["198.51.100.9"])
    assert await fw.egress_list() == [] and await fw.egress_lookup_many(feed) == []


async def test_idempotent_replay(ns, tmp_path):
    fw = client(ns, tmp_path)
    first = await fw.egress_add("203.0.113.50", "one", idempotency_key="run1-step1")
    assert await fw.egress_add("203.0.113.50", "one", idempotency_key="run1-step1") == first
    assert [e.value for e in await fw.egress_list()] == ["203.0.113.50"]
    await fw.egress_remove("203.0.113.50", idempotency_key="run1-step1-undo")
    await fw.egress_remove("203.0.113.50", idempotency_key="run1-step1-undo")  # replay: no 404
    with pytest.raises(NotFound):
        await fw.egress_remove("203.0.113.77", idempotency_key="k-err")
    await fw.egress_add("203.0.113.77", "now present")
    with pytest.raises(NotFound):  # replay of the stored refusal; nothing removed
        await fw.egress_remove("203.0.113.77", idempotency_key="k-err")
    assert await fw.egress_get("203.0.113.77") is not None


async def test_missing_table_without_create_is_refused(ns, tmp_path):
    fw = client(ns, tmp_path, create=False, table="absent")
    with pytest.raises(NotFound) as exc:
        await fw.egress_list()
    assert not exc.value.retryable


async def test_unprivileged_nft_is_unauthorized(ns, tmp_path):
    fw = client(ns, tmp_path, nft_command=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                           "ip", "netns", "exec", ns, "nft"])
    with pytest.raises(Unauthorized):
        await fw.egress_list()


async def test_nft_that_cannot_start_is_retryable(tmp_path):
    fw = NftFirewall(NftConfig(backend="nftables", nft_command=[str(tmp_path / "no-nft")]),
                     Journal(tmp_path / "journal.db"))
    with pytest.raises(Unavailable) as exc:
        await fw.egress_add("203.0.113.9", "x", idempotency_key="k")
    assert exc.value.retryable


HOSTILE_COMMENT = 'feed "x"; flush ruleset }\x00\x1b[31m\nnext line é' + "z" * 200


async def test_hostile_comment_is_data_and_the_block_really_happens(ns, tmp_path):
    """nft 1.0 exits 0 and adds nothing when a comment holds a NUL: the add must still block."""
    subprocess.run(["ip", "-n", ns, "addr", "add", "10.99.0.2/32", "dev", "lo"], check=True)
    fw = client(ns, tmp_path)
    entry = await fw.egress_add("10.99.0.2", HOSTILE_COMMENT)
    assert tcp_verdict(ns, "10.99.0.2") == "dropped"
    assert entry.comment.startswith('feed "x"; flush ruleset }') and "\x00" not in entry.comment
    assert "\x1b" not in entry.comment and "\n" not in entry.comment
    assert len((entry.added_at + "|" + entry.comment).encode()) <= 128
    bulk = await fw.egress_add_many(["192.0.2.7", "2001:db8::7"], HOSTILE_COMMENT)
    assert bulk["added"] == ["192.0.2.7", "2001:db8::7"]
    assert {e.value for e in await fw.egress_list()} == {"10.99.0.2", "192.0.2.7", "2001:db8::7"}
    listed = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True,
                            text=True, check=True).stdout
    assert listed.count("drop") == 4  # the table's own rules, nothing the comment wrote


async def test_an_add_nft_does_not_apply_is_not_reported_as_done(ns, tmp_path):
    """An nft that answers 0 to a write without changing the set (as 1.0 does for some input)."""
    liar = ["sh", "-c", 'case " $* " in *" -f "*) cat >/dev/null; exit 0;; esac; exec ip netns exec "$0" nft "$@"', ns]
    await client(ns, tmp_path).egress_list()  # the real nft creates the table
    fw = client(ns, tmp_path, nft_command=liar)
    with pytest.raises(ToolError) as exc:
        await fw.egress_add("203.0.113.60", "x")
    assert exc.value.code == "nft_not_applied"
    with pytest.raises(ToolError) as exc:
        await fw.egress_add_many(["203.0.113.61", "203.0.113.62"], "x")
    assert exc.value.code == "nft_not_applied"


async def test_scoped_address_is_refused_before_nft_sees_it(ns, tmp_path):
    fw = client(ns, tmp_path)
    for bad in ("fe80::1%eth0", "fe80::2%a b;}", "-203.0.113.9", "203.0.113.9\nflush ruleset", "x" * 5000):
        with pytest.raises(Invalid):
            await fw.egress_add(bad, "x")
    assert await fw.egress_list() == []


async def test_table_flushed_by_a_firewall_reload_is_created_again(ns, tmp_path):
    """`systemctl reload nftables` runs `flush ruleset`: the worker's client must not stay broken."""
    subprocess.run(["ip", "-n", ns, "addr", "add", "10.99.0.3/32", "dev", "lo"], check=True)
    fw = client(ns, tmp_path)
    await fw.egress_add("10.99.0.3", "before the reload")
    subprocess.run(["ip", "netns", "exec", ns, "nft", "flush", "ruleset"], check=True)
    assert await fw.egress_get("10.99.0.3") is None  # the before-state is honest: not blocked any more
    await fw.egress_add("10.99.0.3", "after the reload", idempotency_key="k-reload")
    assert tcp_verdict(ns, "10.99.0.3") == "dropped"
    kept = client(ns, tmp_path, create=False)
    await kept.egress_list()
    subprocess.run(["ip", "netns", "exec", ns, "nft", "flush", "ruleset"], check=True)
    with pytest.raises(NotFound) as exc:
        await kept.egress_list()
    assert "does not exist" in str(exc.value) and not exc.value.retryable


async def test_concurrent_first_calls_create_the_table_once(ns, tmp_path):
    """Reads run outside the client's lock, and two workers share a host: the table, its sets and
    its drop rules are created once, whoever comes first."""
    import asyncio

    a, b = client(ns, tmp_path), client(ns, tmp_path)
    await asyncio.gather(a.egress_list(), a.egress_get("192.0.2.1"), b.egress_lookup_many(["192.0.2.1"]),
                         b.egress_list())
    listed = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True,
                            text=True, check=True).stdout
    assert listed.count("drop") == 4
