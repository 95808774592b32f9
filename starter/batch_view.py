"""What a batch change (`set:<sha256>` target from the intel sync) really holds.

An approver must see the addresses, not a hash: how many, the first few, and how the
batch compares with what Handrail has already applied on that tool (new versus already
there). The sets live in the local content-addressed store under HANDRAIL_HOME, so this
reads files only: no tool, no credentials.
"""

from __future__ import annotations

from typing import Any

from handrail.actions import intel as _intel
from handrail.actions.intel import SET_PREFIX, is_set_target
from handrail.gate.models import Change
from handrail.shown import one_line

FIRST = 10

_BATCHES = [getattr(_intel, name) for name in (
    "ProxyBlockSet", "ProxyUnblockSet", "ProxyTightenSet", "ProxyRelaxSet",
    "EgressBlockSet", "EgressUnblockSet", "IpsDeploySet", "IpsRemoveSet") if hasattr(_intel, name)]
_ADD_KIND = {b.kind: (b.kind if b.adds else b.inverse_kind) for b in _BATCHES}
_ADDS = {b.kind: b.adds for b in _BATCHES}


def _open(settings):
    from handrail.intel.backends import open_state, open_store

    store = open_store(settings)  # the installation's store: files or PostgreSQL
    return store, open_state(settings, store)


def batch_members(change: Change, settings) -> list[str] | None:
    """Every member of a batch change, in canonical order (None: not a batch, or not in this store)."""
    if not is_set_target(change.target):
        return None
    from handrail.intel.state import difference, entries_text

    try:
        store, state = _open(settings)
        try:
            s = store.get_set(change.target[len(SET_PREFIX):])
            if change.params.get("except"):
                s = difference(s, store.get_set(str(change.params["except"])))
            return entries_text(s)
        finally:
            state.close()
    except (OSError, ValueError):
        return None


def batch_facts(change: Change, settings, first: int = FIRST) -> dict[str, Any] | None:
    """Count, first members and the comparison with what Handrail applied on the tool already."""
    members = batch_members(change, settings)
    if members is None:
        return None
    facts: dict[str, Any] = {"count": len(members), "first": members[:first],
                             "adds": _ADDS.get(change.kind, True)}
    try:
        store, state = _open(settings)
        try:
            from handrail.intel.state import entries_text

            applied = set(entries_text(state.applied(_ADD_KIND.get(change.kind, change.kind))))
        finally:
            state.close()
    except (OSError, ValueError):
        return facts
    already = sum(1 for m in members if m in applied)
    if facts["adds"]:
        facts.update(new=len(members) - already, already_applied=already)
    else:
        facts.update(removed=already, not_applied=len(members) - already)
    facts["applied_now"] = len(applied)
    return facts


def describe_batch(change: Change, facts: dict[str, Any] | None, run_id: str) -> str:
    """Lines an approver reads for a batch: what, how many, which, and how to see all."""
    params = ", ".join(f"{one_line(k)} {one_line(v)}" for k, v in change.params.items() if k not in ("batch", "except"))
    lines = [f"{change.kind} {one_line(change.target)}", f"({params})" if params else ""]
    if facts is None:
        lines.append("members: not in this HANDRAIL_HOME's store")
        return "\n".join(x for x in lines if x)
    verb = "block" if facts["adds"] else "unblock"
    lines.append(f"{facts['count']} members to {verb}; first: {', '.join(map(one_line, facts['first']))}"
                 + (" …" if facts["count"] > len(facts["first"]) else ""))
    if "new" in facts:
        lines.append(f"new {facts['new']}, already applied {facts['already_applied']} "
                     f"(Handrail applies {facts['applied_now']} on this tool now)")
    elif "removed" in facts:
        lines.append(f"removes {facts['removed']} of the {facts['applied_now']} applied now; "
                     f"{facts['not_applied']} were not applied")
    lines.append(f"all members: handrail show {run_id} --members")
    return "\n".join(x for x in lines if x)
