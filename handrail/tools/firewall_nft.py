"""Egress blocklist as nftables sets: one per address family, in a table whose output and
forward chains drop traffic to them. Driven through `nft`'s JSON interface.

Each element carries a comment `<added_at>|<comment>` (nftables keeps at most 128 bytes),
so the set itself is the whole state: before/after reads list it, nothing else is kept.
The sets have the interval flag, so whole networks block with one element; an element
that overlaps an existing one is refused as a conflict by the kernel, as it should be.
"""

from __future__ import annotations

import asyncio
import bisect
import ipaddress
import json
import re
from datetime import UTC, datetime

from handrail.ops.tools_config import NftFirewall as NftConfig
from handrail.tools.errors import Conflict, Invalid, NotFound, ToolError, Unauthorized, Unavailable
from handrail.tools.firewall import EgressEntry
from handrail.tools.journal import Journal, fingerprint
from handrail.tools.process import Completed, run_command

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_COMMENT_MAX = 128
BATCH = 2_000


def normalise(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address or a network written at its network boundary ("198.51.100.1/24" is refused)."""
    text = str(value).strip()
    try:
        if "%" in text:  # a scoped address (fe80::1%eth0): nft would look the whole text up as a host name
            raise ValueError(text)
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise Invalid(f"{value!r} is not an IP address or network.", status=422) from None


def text_of(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _comment(added_at: str, comment: str) -> str:
    """Printable characters only: nft 1.0 silently adds nothing when a comment holds a NUL, and
    control characters would reach whoever reads `nft list` in a terminal."""
    printable = "".join(c if c.isprintable() else " " for c in str(comment))
    text = f"{added_at}|{' '.join(printable.split())}"
    while len(text.encode()) > _COMMENT_MAX:
        text = text[:-1]
    return text


def _value_of(val) -> str | None:
    if isinstance(val, str):
        return val
    if isinstance(val, dict) and "prefix" in val:
        return f"{val['prefix']['addr']}/{val['prefix']['len']}"
    if isinstance(val, dict) and "range" in val:  # not written by us; shown as its first address
        return None
    return None


class Coverage:
    """The set's elements as sorted, non-overlapping intervals (the kernel keeps an interval set so):
    which element covers a value, and which one a new network would overlap."""

    def __init__(self, values) -> None:
        self._by_version: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for value in values:
            net = ipaddress.ip_network(value)
            self._by_version[net.version].append((int(net.network_address), int(net.broadcast_address), value))
        for items in self._by_version.values():
            items.sort()
        self._starts = {v: [i[0] for i in items] for v, items in self._by_version.items()}

    def add(self, net) -> None:
        items = self._by_version[net.version]
        item = (int(net.network_address), int(net.broadcast_address), text_of(net))
        pos = bisect.bisect_left(items, item)
        items.insert(pos, item)
        self._starts[net.version].insert(pos, item[0])

    def covering(self, net) -> str | None:
        """The element whose range contains all of `net`, if any."""
        items, start, end = self._by_version[net.version], int(net.network_address), int(net.broadcast_address)
        pos = bisect.bisect_right(self._starts[net.version], start) - 1
        if pos >= 0 and items[pos][1] >= end:
            return items[pos][2]
        return None

    def overlapping(self, net) -> str | None:
        """An element sharing any address with `net`."""
        items, start, end = self._by_version[net.version], int(net.network_address), int(net.broadcast_address)
        pos = bisect.bisect_right(self._starts[net.version], end) - 1
        if pos >= 0 and items[pos][1] >= start:
            return items[pos][2]
        return None


class NftFirewall:
    def __init__(self, cfg: NftConfig, journal: Journal) -> None:
        for name in (cfg.table, cfg.set_v4, cfg.set_v6):
            if not _NAME.match(name):
                raise ValueError(f"{name!r} is not a valid nftables name.")
        self.cfg = cfg
        self.journal = journal
        self._lock = asyncio.Lock()
        self._ready = False

    # -- nft -------------------------------------------------------------------------------
    def _error(self, done: Completed, what: str) -> ToolError:
        line = done.error_line or f"exit status {done.returncode}"
        low = line.lower() + done.stderr.decode(errors="replace").lower()
        message = f"nft refused to {what}: {line}."
        if "operation not permitted" in low or "permission denied" in low:
            return Unauthorized(message, status=403)
        if "file exists" in low or "conflicting intervals" in low or "interval overlaps" in low:
            return Conflict(message, status=409)
        if "no such file or directory" in low:
            return NotFound(message, status=404)
        if "resource busy" in low or "try again" in low or "no buffer space" in low:
            return Unavailable(message, status=503)
        return ToolError(message, code="nft_failed")

    def _not_applied(self, what: str) -> ToolError:
        return ToolError(f"nft reported success but did not {what}: the set does not hold it.",
                         code="nft_not_applied")

    async def _nft(self, args: list[str], what: str, stdin: bytes | None = None) -> Completed:
        done = await run_command([*self.cfg.nft_command, *args], stdin=stdin, timeout=self.cfg.timeout)
        if done.returncode != 0:
            raise self._error(done, what)
        return done

    async def _ensure(self) -> None:
        if self._ready:
            return
        c = self.cfg
        try:
            await self._nft(["-j", "list", "table", c.family, c.table], "list the table")
        except NotFound:
            if not c.create:
                raise NotFound(f"The nftables table {c.family} {c.table} does not exist.", status=404) from None
            # One transaction that starts with `create table`: when another call or worker created the
            # table first, it fails whole with EEXIST instead of adding a second copy of the drop rules.
            script = f"""create table {c.family} {c.table}
table {c.family} {c.table} {{
  set {c.set_v4} {{ type ipv4_addr; flags interval; }}
  set {c.set_v6} {{ type ipv6_addr; flags interval; }}
  chain egress {{ type filter hook output priority 0; policy accept;
    ip daddr @{c.set_v4} drop
    ip6 daddr @{c.set_v6} drop
  }}
  chain forward {{ type filter hook forward priority 0; policy accept;
    ip daddr @{c.set_v4} drop
    ip6 daddr @{c.set_v6} drop
  }}
}}
"""
            try:
                await self._nft(["-f", "-"], "create the egress table", stdin=script.encode())
            except Conflict:
                pass  # created meanwhile, whole
        self._ready = True

    def _set_for(self, net) -> str:
        return self.cfg.set_v4 if net.version == 4 else self.cfg.set_v6

    async def _list_set(self, set_name: str) -> Completed:
        """The set as nft lists it; a table that vanished since it was checked (a reload of
        nftables.service runs `flush ruleset`) is checked again, so it is created again when
        `create` is set and reported as missing otherwise."""
        args = ["-j", "list", "set", self.cfg.family, self.cfg.table, set_name]
        checked_before = self._ready
        await self._ensure()
        try:
            return await self._nft(args, f"list the set {set_name}")
        except NotFound:
            if not checked_before:  # just checked: the set itself is missing, say so
                raise
            self._ready = False
            await self._ensure()
            return await self._nft(args, f"list the set {set_name}")

    async def _entries(self) -> dict[str, EgressEntry]:
        entries: dict[str, EgressEntry] = {}
        for set_name in (self.cfg.set_v4, self.cfg.set_v6):
            done = await self._list_set(set_name)
            try:
                items = json.loads(done.stdout)["nftables"]
            except (ValueError, KeyError, TypeError):
                raise ToolError(f"nft listed the set {set_name} in a form Handrail does not read.",
                                code="bad_response") from None
            for item in items:
                for elem in (item.get("set") or {}).get("elem", []) or []:
                    val, comment = elem, ""
                    if isinstance(elem, dict) and "elem" in elem:
                        val, comment = elem["elem"].get("val"), str(elem["elem"].get("comment") or "")
                    value = _value_of(val)
                    if value is None:
                        continue
                    value = text_of(ipaddress.ip_network(value, strict=False))
                    added_at, _, note = comment.partition("|") if "|" in comment else ("", "", comment)
                    entries[value] = EgressEntry(value=value, comment=note, added_at=added_at)
        return entries

    def _element_json(self, op: str, nets: list, comment: str, added_at: str) -> bytes:
        commands = []
        for set_name in (self.cfg.set_v4, self.cfg.set_v6):
            elems = []
            for net in nets:
                if self._set_for(net) != set_name:
                    continue
                val = (str(net.network_address) if net.prefixlen == net.max_prefixlen
                       else {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}})
                elems.append({"elem": {"val": val, "comment": _comment(added_at, comment)}} if op == "create"
                             else val)
            if elems:
                commands.append({op: {"element": {"family": self.cfg.family, "table": self.cfg.table,
                                                  "name": set_name, "elem": elems}}})
        return json.dumps({"nftables": commands}).encode()

    # -- the Firewall protocol ---------------------------------------------------------------
    async def egress_list(self) -> list[EgressEntry]:
        entries = await self._entries()
        return [entries[v] for v in sorted(entries)]

    async def egress_get(self, value: str) -> EgressEntry | None:
        net = normalise(value)
        return (await self._entries()).get(text_of(net))

    async def egress_add(self, value: str, comment: str, *, idempotency_key: str | None = None) -> EgressEntry:
        net = normalise(value)
        key = text_of(net)

        async def act(resume: bool) -> EgressEntry:
            async with self._lock:
                entries = await self._entries()
                if key in entries:
                    if resume:
                        return entries[key]
                    raise Conflict(f"{key} is already on the egress blocklist.", status=409)
                overlap = Coverage(entries).overlapping(net)
                if overlap is not None:
                    raise Conflict(f"{key} overlaps {overlap}, already on the egress blocklist.", status=409)
                added_at = datetime.now(UTC).isoformat(timespec="seconds")
                await self._nft(["-j", "-f", "-"], f"add {key}",
                                stdin=self._element_json("create", [net], comment, added_at))
                entry = (await self._entries()).get(key)
                if entry is None:
                    raise self._not_applied(f"add {key}")
                return entry

        return await self.journal.run("firewall", idempotency_key, fingerprint("add", key, comment), act,
                                      dump=lambda e: e.model_dump(), load=EgressEntry.model_validate)

    async def egress_remove(self, value: str, *, idempotency_key: str | None = None) -> None:
        net = normalise(value)
        key = text_of(net)

        async def act(resume: bool) -> None:
            async with self._lock:
                if key not in await self._entries():
                    if resume:
                        return
                    raise NotFound(f"{key} is not on the egress blocklist.", status=404)
                await self._nft(["-j", "-f", "-"], f"remove {key}", stdin=self._element_json("delete", [net], "", ""))

        await self.journal.run("firewall", idempotency_key, fingerprint("remove", key), act)

    async def edl(self) -> str:
        values = sorted(await self._entries())
        return "".join(v + "\n" for v in values)

    async def egress_lookup_many(self, values: list[str]) -> list[str]:
        """The values whose traffic the sets drop: an element itself, or inside a blocked network."""
        nets = [normalise(v) for v in values]
        cover = Coverage(await self._entries())
        return [text_of(n) for n in nets if cover.covering(n) is not None]

    async def egress_add_many(self, values: list[str], comment: str, *,
                              idempotency_key: str | None = None) -> dict[str, list[str]]:
        """Networks first (widest first), so an address inside a network of the same batch is covered by it
        rather than refused; a value already covered is `already`. A network that would only partly overlap
        an element is refused (the kernel cannot hold both)."""
        nets = {text_of(n): n for n in (normalise(v) for v in values)}

        async def act(resume: bool) -> dict[str, list[str]]:
            async with self._lock:
                cover = Coverage(await self._entries())
                already = {k for k, n in nets.items() if cover.covering(n) is not None}
                new = []
                for key, net in sorted(((k, n) for k, n in nets.items() if k not in already),
                                       key=lambda kv: (kv[1].version, kv[1].prefixlen, int(kv[1].network_address))):
                    if cover.covering(net) is not None:
                        continue  # inside a network this batch adds
                    overlap = cover.overlapping(net)
                    if overlap is not None:
                        raise Conflict(f"{key} overlaps {overlap}, already on the egress blocklist.", status=409)
                    cover.add(net)
                    new.append(net)
                added_at = datetime.now(UTC).isoformat(timespec="seconds")
                for i in range(0, len(new), BATCH):
                    await self._nft(["-j", "-f", "-"], f"add {len(new[i:i + BATCH])} elements",
                                    stdin=self._element_json("create", new[i:i + BATCH], comment, added_at))
                if new:
                    now = await self._entries()
                    missing = [text_of(n) for n in new if text_of(n) not in now]
                    if missing:
                        raise self._not_applied(f"add {len(missing)} of {len(new)} elements (first {missing[0]})")
                return {"added": [k for k in nets if k not in already], "already": [k for k in nets if k in already]}

        return await self.journal.run("firewall", idempotency_key, fingerprint("add_many", sorted(nets), comment), act)

    async def egress_remove_many(self, values: list[str], *,
                                 idempotency_key: str | None = None) -> dict[str, list[str]]:
        """Removes the values that are elements; a value only covered by another element stays blocked
        (and `egress_lookup_many` keeps saying so) until that element goes."""
        nets = {text_of(n): n for n in (normalise(v) for v in values)}

        async def act(resume: bool) -> dict[str, list[str]]:
            async with self._lock:
                present = await self._entries()
                gone = [n for k, n in nets.items() if k in present]
                for i in range(0, len(gone), BATCH):
                    await self._nft(["-j", "-f", "-"], f"remove {len(gone[i:i + BATCH])} elements",
                                    stdin=self._element_json("delete", gone[i:i + BATCH], "", ""))
                return {"removed": [text_of(n) for n in gone], "absent": [k for k in nets if k not in present]}

        return await self.journal.run("firewall", idempotency_key, fingerprint("remove_many", sorted(nets)), act)
