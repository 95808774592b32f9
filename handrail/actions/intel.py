"""Batch actions for the intel sync: one gated change for a whole set of indicators.

The gate works per change (two activities and one ledger record each), so thousands of
indicators per sync cannot each be a gated step. A *batch* change has the same kind as
the single one (``proxy.block``, ``proxy.tighten``, ``firewall.egress_block``,
``ips.deploy_rule`` and their inverses) and a target that is a content-addressed set
reference, ``set:<sha256>`` (an :class:`~handrail.intel.store.IntelStore` ``.iset``),
with ``params`` ``{"count": members, "feeds": "the feeds naming most of them", ...}``:

* ``read`` asks the tool (bulk API, batches of ``params["batch"]`` values) which members
  are already in the wanted state, stores *that* subset by hash and returns
  ``{"set", "members", "present_sha256", "present"}`` — the ledger's before-state holds a
  hash, never the list;
* ``wanted`` — every member already is (blocked / tightened / deployed): "unchanged";
* ``apply`` sends every member in batches, idempotency key ``<key>:<batch index>``; the
  tool leaves members already in the wanted state alone;
* ``inverse`` — the opposite kind for exactly the members this change added
  (``members - present``), stored as a set of its own.

Rollback verification compares the tool's ``present`` subset with the before-state's
hash: after the inverse, the members somebody else had blocked are still blocked, and
nothing else is.

:func:`with_set_targets` wraps the registry so a kind serves both shapes: a ``set:``
target goes to the batch action here, any other target to the single-target action
registered for the kind (if any). Guardrails for batch changes: the per-indicator
never-block / special-use checks run in an activity *before* the gate
(:mod:`handrail.intel.guardrails`, which drops entries and reports per feed; the gate's
``never_block`` sees a non-IP target and passes), and the gate's ``max_batch`` guardrail
holds a change whose ``params["count"]`` exceeds its threshold.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import Any

from handrail.actions.base import UnknownAction
from handrail.gate.models import Change

SET_PREFIX = "set:"
DEFAULT_BATCH = 5_000


@dataclass
class IntelContext:
    """Where the sets behind ``set:`` targets live; the worker builds one and hands it to
    the batch actions when it builds the action table (`handrail.actions.Actions`)."""

    store: Any  # IntelStore
    state: Any  # IntelState


def set_target(sha256: str) -> str:
    return SET_PREFIX + sha256


def is_set_target(target: str) -> bool:
    return target.startswith(SET_PREFIX)


def _sha(change: Change) -> str:
    return change.target[len(SET_PREFIX):]


def _chunks(seq: list, n: int):
    for i in range(0, len(seq), n):
        yield i // n, seq[i:i + n]


class _Batch:
    """Shared shape; subclasses say which members a tool takes and how to ask it."""

    kind: str
    inverse_kind: str
    adds: bool  # True: wanted = every member present; False: wanted = none present

    ips_only = False

    def __init__(self, intel: IntelContext) -> None:
        self.intel = intel

    def members(self, ctx: IntelContext, change: Change):
        """The member set and its entries as text (canonical order)."""
        from handrail.intel.state import difference, entries_text, only_ips

        s = ctx.store.get_set(_sha(change))
        if self.ips_only:
            s = only_ips(s)
        if change.params.get("except"):
            s = difference(s, ctx.store.get_set(str(change.params["except"])))
        return s, entries_text(s)

    async def members_off_loop(self, ctx: IntelContext, change: Change):
        """:meth:`members` in a thread: reading a set is a file or a PostgreSQL query, and a
        decode of a large one; neither may stall the worker's event loop."""
        return await asyncio.to_thread(self.members, ctx, change)

    def _batch(self, change: Change) -> int:
        return int(change.params.get("batch") or DEFAULT_BATCH)

    async def _present(self, tools, ctx, change, values: list[str]) -> list[str]:
        raise NotImplementedError

    async def read(self, tools, change: Change) -> dict[str, Any]:
        from handrail.intel.state import subset_by_text

        ctx = self.intel
        s, values = await self.members_off_loop(ctx, change)
        present = await self._present(tools, ctx, change, values)
        sub = await asyncio.to_thread(subset_by_text, s, present, values)
        return {"set": _sha(change), "members": len(values),
                "present_sha256": await asyncio.to_thread(ctx.store.put_set, sub), "present": len(sub)}

    def wanted(self, change: Change, state: dict[str, Any]) -> bool:
        return state["present"] == state["members"] if self.adds else state["present"] == 0

    def inverse(self, change: Change, before: dict[str, Any]) -> Change:
        """Pure (no store access): an add is undone by removing the change's members
        except those present before; a removal by adding back exactly those present."""
        params = {k: v for k, v in change.params.items() if k in ("batch", "rule_action", "sid_base")}
        if self.adds:
            params.update(count=before["members"] - before["present"],
                          **{"except": before["present_sha256"]})
            return Change(kind=self.inverse_kind, target=change.target, params=params)
        params.update(count=before["present"],
                      comment=str(change.params.get("comment") or "restored by Handrail rollback"))
        return Change(kind=self.inverse_kind, target=set_target(before["present_sha256"]),
                      params=params)


def standing_part(intel: IntelContext, change: Change) -> Change | None:
    """What of a batch change the intel sync still stands by, for `handrail drift` (blocking: a
    thread). A sync's later work takes part of an earlier batch back on purpose (the age-out
    unblocks what left the feeds, a later sync blocks again what an age-out removed) with
    changes to *other* sets, so a batch is judged on its members the sync still counts as
    applied (an add) or still removed (a removal). None: nothing of it is the sync's word any
    more; the change itself for a kind the sync does not keep."""
    from handrail.intel.messages import REMOVE_KIND
    from handrail.intel.state import difference, intersection, only_ips

    adds = change.kind in REMOVE_KIND
    add_kind = change.kind if adds else next((k for k, r in REMOVE_KIND.items() if r == change.kind), None)
    if add_kind is None or not is_set_target(change.target):
        return change
    members = intel.store.get_set(_sha(change))
    if change.params.get("except"):
        members = difference(members, intel.store.get_set(str(change.params["except"])))
    if add_kind == "firewall.egress_block":
        members = only_ips(members)
    applied = intel.state.applied(add_kind)
    standing = intersection(members, applied) if adds else difference(members, applied)
    if not len(standing):
        return None
    params = {k: v for k, v in change.params.items() if k in ("batch", "rule_action", "sid_base")}
    return Change(kind=change.kind, target=set_target(intel.store.put_set(standing)),
                  params={**params, "count": len(standing)})


def added_members(store: Any, before: dict[str, Any], ips_only: bool = False):
    """What an applied batch *add* changed: its members minus those present before."""
    from handrail.intel.state import difference, only_ips

    s = store.get_set(before["set"])
    if ips_only:
        s = only_ips(s)
    return difference(s, store.get_set(before["present_sha256"]))


# proxy --------------------------------------------------------------------------------
class ProxyBlockSet(_Batch):
    kind, inverse_kind, adds = "proxy.block", "proxy.unblock", True

    async def _present(self, tools, ctx, change, values):
        out: list[str] = []
        for _, chunk in _chunks(values, self._batch(change)):
            out += (await tools.proxy.bulk_status(chunk)).blocked
        return out

    async def apply(self, tools, change, key):
        comment = str(change.params.get("comment") or "Handrail intel sync")
        values = (await self.members_off_loop(self.intel, change))[1]
        for i, chunk in _chunks(values, self._batch(change)):
            await tools.proxy.bulk_block(chunk, comment=comment, idempotency_key=f"{key}:{i}")


class ProxyUnblockSet(ProxyBlockSet):
    kind, inverse_kind, adds = "proxy.unblock", "proxy.block", False

    async def apply(self, tools, change, key):
        values = (await self.members_off_loop(self.intel, change))[1]
        for i, chunk in _chunks(values, self._batch(change)):
            await tools.proxy.bulk_unblock(chunk, idempotency_key=f"{key}:{i}")


class ProxyTightenSet(_Batch):
    kind, inverse_kind, adds = "proxy.tighten", "proxy.relax", True

    async def _present(self, tools, ctx, change, values):
        out: list[str] = []
        for _, chunk in _chunks(values, self._batch(change)):
            out += (await tools.proxy.bulk_status(chunk)).tightened
        return out

    async def apply(self, tools, change, key):
        values = (await self.members_off_loop(self.intel, change))[1]
        for i, chunk in _chunks(values, self._batch(change)):
            await tools.proxy.bulk_tighten(chunk, logging="extra", packet_capture=True,
                                           idempotency_key=f"{key}:{i}")


class ProxyRelaxSet(ProxyTightenSet):
    kind, inverse_kind, adds = "proxy.relax", "proxy.tighten", False

    async def apply(self, tools, change, key):
        values = (await self.members_off_loop(self.intel, change))[1]
        for i, chunk in _chunks(values, self._batch(change)):
            await tools.proxy.bulk_relax(chunk, idempotency_key=f"{key}:{i}")


# firewall EDL (addresses and networks only) --------------------------------------------
class EgressBlockSet(_Batch):
    kind, inverse_kind, adds = "firewall.egress_block", "firewall.egress_unblock", True
    ips_only = True

    async def _present(self, tools, ctx, change, values):
        out: list[str] = []
        for _, chunk in _chunks(values, self._batch(change)):
            out += await tools.firewall.egress_lookup_many(chunk)
        return out

    async def apply(self, tools, change, key):
        comment = str(change.params.get("comment") or "Handrail intel sync")
        values = (await self.members_off_loop(self.intel, change))[1]
        for i, chunk in _chunks(values, self._batch(change)):
            await tools.firewall.egress_add_many(chunk, comment, idempotency_key=f"{key}:{i}")


class EgressUnblockSet(EgressBlockSet):
    kind, inverse_kind, adds = "firewall.egress_unblock", "firewall.egress_block", False

    async def apply(self, tools, change, key):
        values = (await self.members_off_loop(self.intel, change))[1]
        for i, chunk in _chunks(values, self._batch(change)):
            await tools.firewall.egress_remove_many(chunk, idempotency_key=f"{key}:{i}")


# IPS: one Suricata rule per indicator, sid stable per indicator -------------------------
def _content(text: str) -> str:
    """A Suricata content string: `"`, `;`, `\\` and `|` as hex bytes."""
    return "".join({'"': "|22|", ";": "|3B|", "\\": "|5C|", "|": "|7C|"}.get(c, c) for c in text)


def _msg(text: str) -> str:
    return "".join(c for c in text if c not in '";\\')[:200]


def _ip_like(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
        return True
    except ValueError:
        return False


def suricata_rule(entry: str, sid: int, action: str = "drop") -> str | None:
    """The rule for one normalized indicator (None for an entry a rule cannot express:
    an address range that is not one CIDR block)."""
    msg = _msg(f"Handrail intel {entry}")
    if "://" in entry:  # URL: host and path
        rest = entry.split("://", 1)[1]
        host, _, path = rest.partition("/")
        if not host.startswith("["):
            host = host.rsplit(":", 1)[0]  # the normalised form keeps only non-default ports
        return (f'{action} http $HOME_NET any -> $EXTERNAL_NET any (msg:"{msg}"; '
                f'http.host; content:"{_content(host)}"; http.uri; content:"{_content("/" + path)}"; '
                f'sid:{sid}; rev:1;)')
    if _ip_like(entry):
        return f'{action} ip $HOME_NET any -> {entry} any (msg:"{msg}"; sid:{sid}; rev:1;)'
    if "-" in entry and _ip_like(entry.split("-", 1)[0]):
        return None
    return (f'{action} dns $HOME_NET any -> any any (msg:"{msg}"; dns.query; '
            f'content:"{_content(entry)}"; nocase; sid:{sid}; rev:1;)')


class IpsDeploySet(_Batch):
    kind, inverse_kind, adds = "ips.deploy_rule", "ips.remove_rule", True

    def _sid_base(self, change: Change) -> int:
        from handrail.intel.config import IntelSettings

        return int(change.params.get("sid_base") or IntelSettings().ips_sid_base)

    async def _present(self, tools, ctx, change, values):
        sids = await asyncio.to_thread(ctx.state.sids, values, self._sid_base(change))
        by_sid = {s: v for v, s in zip(values, sids, strict=True)}
        out: list[str] = []
        for _, chunk in _chunks(sids, self._batch(change)):
            out += [by_sid[s] for s in await tools.ips.rules_present(chunk)]
        return out

    async def apply(self, tools, change, key):
        ctx = self.intel
        values = (await self.members_off_loop(ctx, change))[1]
        sids = await asyncio.to_thread(ctx.state.sids, values, self._sid_base(change))
        action = str(change.params.get("rule_action") or "drop")
        rules = [r for r in (suricata_rule(v, s, action) for v, s in zip(values, sids, strict=True)) if r]
        for i, chunk in _chunks(rules, self._batch(change)):
            await tools.ips.deploy_rules(chunk, comment="Handrail intel sync",
                                         idempotency_key=f"{key}:{i}")


class IpsRemoveSet(IpsDeploySet):
    kind, inverse_kind, adds = "ips.remove_rule", "ips.deploy_rule", False

    async def apply(self, tools, change, key):
        ctx = self.intel
        values = (await self.members_off_loop(ctx, change))[1]
        sids = await asyncio.to_thread(ctx.state.sids, values, self._sid_base(change))
        for i, chunk in _chunks(sids, self._batch(change)):
            await tools.ips.remove_rules(chunk, idempotency_key=f"{key}:{i}")


BATCH_KINDS = (ProxyBlockSet, ProxyUnblockSet, ProxyTightenSet, ProxyRelaxSet,
               EgressBlockSet, EgressUnblockSet, IpsDeploySet, IpsRemoveSet)


class SetOrSingle:
    """One kind, two shapes: ``set:`` targets go to the batch action, others to the single."""

    def __init__(self, kind: str, batch: _Batch, single: Any | None) -> None:
        self.kind = kind
        self.batch = batch
        self.single = single
        if single is not None and hasattr(single, "facts"):
            self.facts = self._facts

    def _pick(self, change: Change):
        if is_set_target(change.target):
            return self.batch
        if self.single is None:
            raise UnknownAction(f"{self.kind} takes only set: targets (no single-target action)")
        return self.single

    async def _facts(self, tools, change):
        if is_set_target(change.target):
            return {}
        return await self.single.facts(tools, change)

    async def read(self, tools, change):
        return await self._pick(change).read(tools, change)

    def wanted(self, change, state):
        return self._pick(change).wanted(change, state)

    async def apply(self, tools, change, key):
        return await self._pick(change).apply(tools, change, key)

    def inverse(self, change, before):
        return self._pick(change).inverse(change, before)


def with_set_targets(actions: dict[str, Any], intel: IntelContext) -> dict[str, Any]:
    """The table with every batch kind able to take ``set:`` targets too."""
    out = dict(actions)
    for cls in BATCH_KINDS:
        batch = cls(intel)
        out[batch.kind] = SetOrSingle(batch.kind, batch, actions.get(batch.kind))
    return out
