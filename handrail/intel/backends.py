"""Which intel store and sync state an installation uses: files and SQLite under one
``HANDRAIL_HOME``, or PostgreSQL beside the ledger (``HANDRAIL_LEDGER_URL=postgresql://…``),
where every worker on every host sees every set and one sync memory.

Open them here (never by hand in worker code); the backends themselves do not know each
other, so the way reads top-down: this chooser, then the two backends, then their base.
"""

from __future__ import annotations

from handrail.intel.state import IntelState
from handrail.intel.store import IntelStore


def open_store(settings) -> IntelStore:
    """The store every worker of this installation shares (`settings`: handrail.ops.config.Settings)."""
    if settings.ledger_on_postgres:
        from handrail.intel.store_pg import PostgresIntelStore

        return PostgresIntelStore.shared(settings.ledger_url)
    return IntelStore(settings.store_dir)


def open_state(settings, store: IntelStore) -> IntelState:
    """The installation's sync state: PostgreSQL beside the ledger, else ``<home>/intel.db``."""
    if settings.ledger_on_postgres:
        from handrail.intel.state_pg import PostgresIntelState

        return PostgresIntelState.shared(settings.ledger_url, store)
    return IntelState(settings.home / "intel.db", store)


def close_shared(url: str) -> None:
    """Close this process's shared intel store and state for `url` (tests, before dropping a database)."""
    from handrail.intel.state_pg import STATES
    from handrail.intel.store_pg import STORES

    for registry in (STATES, STORES):
        registry.close(url)
