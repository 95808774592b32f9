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
from handrail.gate.ledger import Ledger
from handrail.gate.policy import Policy, PolicyError, load_policy
from handrail.intel.state import IntelState
from handrail.intel.store import IntelStore
from handrail.ops.config import Settings
from handrail.tools import ToolClients


@dataclass
class _PolicyCache:
    path: Path
    policy: Policy | None = None
    mtime: float | None = None


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
        store = IntelStore(settings.store_dir)
        intel = IntelContext(store, IntelState(settings.home / "intel.db", store))
        return cls(settings=settings, tools=tools, ledger=ledger or Ledger(settings.ledger_path),
                   intel=intel, actions=Actions(intel), _policy=_PolicyCache(settings.policy_path))

    def policy(self) -> Policy:
        """The policy file, re-read when it changes (so `handrail trust set` takes effect at the
        next step); a broken policy is a non-retryable `PolicyError` for the activity."""
        cache = self._policy
        try:
            mtime = cache.path.stat().st_mtime
        except OSError:
            mtime = None
        if cache.policy is None or mtime != cache.mtime:
            try:
                cache.policy = load_policy(cache.path)
            except PolicyError as exc:
                raise policy_failure(exc) from None
            cache.mtime = mtime
        return cache.policy
