"""What one worker process shares between its activities: built once, passed explicitly.

The worker builds a `WorkerContext` (settings, tool clients, ledger, intel store, the
action table and the policy it re-reads when the file changes) and hands it to every
activity class. Nothing is found through module-level registries, so a test or a second
worker in the same process gets exactly the resources it built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from activities.errors import policy_failure
from handrail.actions import Actions, IntelContext
from handrail.gate.ledger import Ledger, open_ledger
from handrail.gate.policy import Policy, PolicyError
from handrail.gate.policy_signing import PolicyKeeper, signature_path
from handrail.intel.backends import open_state, open_store
from handrail.ops.config import Settings
from handrail.tools import ToolClients


@dataclass
class _PolicyCache:
    path: Path
    keeper: PolicyKeeper
    policy: Policy | None = None
    mtime: tuple | None = None


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@dataclass
class WorkerContext:
    settings: Settings
    tools: ToolClients
    ledger: Ledger
    intel: IntelContext
    actions: Actions
    _policy: _PolicyCache = field(repr=False, default=None)  # type: ignore[assignment]

    @classmethod
    def build(cls, settings: Settings, tools: ToolClients, ledger: Ledger | None = None) -> "WorkerContext":
        store = open_store(settings)  # shared by every worker when on PostgreSQL
        intel = IntelContext(store, open_state(settings, store))
        return cls(settings=settings, tools=tools, ledger=ledger or open_ledger(settings),
                   intel=intel, actions=Actions(intel),
                   _policy=_PolicyCache(settings.policy_path, PolicyKeeper(settings.home)))

    def policy(self) -> Policy:
        """The policy in force, re-read when the file or its signatures change (so `handrail
        trust set` takes effect at the next step). With `[policy_admins]`, an edit counts only
        once enough admins signed it; until then the last signed policy stays in force
        (`handrail.gate.policy_signing`). A broken policy is a non-retryable `PolicyError`."""
        cache = self._policy
        mtime = (_mtime(cache.path), _mtime(signature_path(cache.path)))
        if cache.policy is None or mtime != cache.mtime:
            try:
                cache.policy = cache.keeper.load(cache.path)
            except PolicyError as exc:
                raise policy_failure(exc) from None
            cache.mtime = mtime
        return cache.policy

    def refused_policy(self):
        """The unsigned edit of the policy file being refused right now, if any."""
        return self._policy.keeper.refused
