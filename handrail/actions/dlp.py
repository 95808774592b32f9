"""DLP console actions (owner: exfiltration runbook): close an alert as handled, reopen it.

Marking the alert processed records the run's outcome in the DLP console and takes it off
the queue the `dlp` poller reads; rolling the run back reopens it.
"""

from __future__ import annotations

from handrail.gate.models import Change


class DlpMarkProcessed:
    kind = "dlp.mark_processed"

    async def read(self, tools, change):
        alert = await tools.dlp.get_alert(change.target)
        return {"status": alert.status, "outcome": alert.processing.outcome if alert.processing else None}

    def wanted(self, change, state):
        return state["status"] == "processed"

    async def apply(self, tools, change, key):
        await tools.dlp.mark_processed(change.target, by="handrail", outcome=str(change.params.get("outcome") or ""),
                                       idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="dlp.reopen", target=change.target)


class DlpReopen:
    kind = "dlp.reopen"

    async def read(self, tools, change):
        return await DlpMarkProcessed().read(tools, change)

    def wanted(self, change, state):
        return state["status"] == "new"

    async def apply(self, tools, change, key):
        await tools.dlp.reopen(change.target, idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="dlp.mark_processed", target=change.target, params={"outcome": before.get("outcome") or ""})
