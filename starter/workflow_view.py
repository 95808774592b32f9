"""`show` for a workflow Temporal knows that is no runbook run: say what it is.

Handrail itself prints ids like `expiry-RUN`, and the Web UI lists `phishing-intake-*`,
`handrail-reconcile-run-*` and the like next to the runs. They answer no `status` query
with a timeline, and the ledger keeps nothing under their id, so `show` used to call them
"not known". Temporal does know them: this reads its description (type, status, start and
close time, the schedule that started it) and, for an expiry workflow, which run's changes
it reverts and when, from the ledger.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from handrail.gate.expiry import EXPIRY_WORKFLOW
from handrail.gate.ledger import open_ledger
from starter.output import CliError, fail

EXPIRY_PREFIX = "expiry-"


class NotARun(CliError):
    """The id names a workflow Temporal knows that is no runbook run; `doc` says what it is.

    `show` prints `doc`; any other command that wanted a run refuses with its first sentence.
    """

    def __init__(self, doc: dict[str, Any]):
        super().__init__(workflow_lines(doc)[0])
        self.doc = doc


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _first(attributes: dict, name: str) -> str:
    value = attributes.get(name) or []
    return str(value[0]) if isinstance(value, list) and value else str(value or "")


def is_runbook_run(doc: dict[str, Any]) -> bool:
    """A run of a runbook (or a rollback) carries HandrailRunbook; an expiry workflow carries `expiry`."""
    return bool(doc.get("runbook")) and doc["runbook"] != "expiry" and doc["type"] != EXPIRY_WORKFLOW


async def describe_workflow(client, settings, workflow_id: str) -> dict[str, Any] | None:
    """What Temporal says about the workflow (None when it knows no such id)."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except Exception:  # not found, or Temporal not answering: the caller says "not known"
        return None
    attributes = dict(desc.search_attributes or {})
    doc: dict[str, Any] = {
        "workflow_id": workflow_id,
        "runbook_run": False,
        "type": desc.workflow_type,
        "status": desc.status.name.lower() if desc.status else "unknown",
        "started_at": desc.start_time.isoformat() if desc.start_time else None,
        "closed_at": desc.close_time.isoformat() if desc.close_time else None,
        "task_queue": desc.task_queue,
        "handrail_state": _first(attributes, "HandrailState") or None,
        "runbook": _first(attributes, "HandrailRunbook") or None,
        "scheduled_by": _first(attributes, "TemporalScheduledById") or None,
    }
    if doc["type"] == EXPIRY_WORKFLOW and workflow_id.startswith(EXPIRY_PREFIX):
        doc["expires"] = expiry_facts(settings, workflow_id[len(EXPIRY_PREFIX):])
    return doc


def expiry_facts(settings, run_id: str) -> dict[str, Any]:
    """The run whose changes an expiry workflow reverts, and each change's expiry, from the ledger."""
    ledger = open_ledger(settings)
    try:
        records = [r for r in ledger.changes_for_run(run_id) if r.expires_at is not None]
        one = ledger.change(run_id) if not records and "/" in run_id else None
        if one is not None and one.expires_at is not None:  # expiry-<change id>: a change that took another over
            records, run_id = [one], one.run_id
    finally:
        ledger.close()
    return {"run_id": run_id, "changes": [{
        "change_id": r.change_id, "change": r.change.describe(), "expires_at": r.expires_at.isoformat(),
        "reverted_at": r.reverted_at.isoformat() if r.reverted_at else None, "reverted_by": r.reverted_by,
    } for r in records]}


def workflow_lines(doc: dict[str, Any]) -> list[str]:
    """What `show` prints for a workflow that is no runbook run (plain text; the first line is one sentence)."""
    closed = f", closed {_when(doc['closed_at'])}" if doc.get("closed_at") else ""
    lines = [f"{doc['workflow_id']} is no runbook run: it is the Temporal workflow {doc['type']} "
             f"({doc['status']}, started {_when(doc['started_at'])}{closed}), so it has no step timeline."]
    if doc.get("handrail_state"):
        lines.append(f"HandrailState: {doc['handrail_state']}")
    if doc.get("scheduled_by"):
        lines.append(f"Started by the schedule {doc['scheduled_by']} (`handrail schedule NAME --show`).")
    expires = doc.get("expires")
    if expires is not None:
        run_id = expires["run_id"]
        if not expires["changes"]:
            lines.append(f"It reverts the changes of run {run_id} when they expire; the ledger holds none "
                         f"with a time-to-live (`handrail show {run_id}`).")
        else:
            lines.append(f"It reverts the changes of run {run_id} when they expire (`handrail show {run_id}`):")
        for change in expires["changes"]:
            done = (f"reverted {_when(change['reverted_at'])} by {change['reverted_by']}"
                    if change["reverted_at"] else "pending")
            lines.append(f"  {change['change']}: expires {_when(change['expires_at'])}, {done}")
    return lines


async def refuse_unknown(client, settings, workflow_id: str, why_not_live: str) -> None:
    """Raise the honest answer for an id with no status and nothing in the ledger: what Temporal
    knows of it (NotARun), or that it is a run no worker can read yet; return if Temporal knows nothing."""
    doc = await describe_workflow(client, settings, workflow_id)
    if doc is None:
        return
    if is_runbook_run(doc):
        fail(f"Run {workflow_id} ({doc['type']}, {doc['status']} since {_when(doc['started_at'])}) is known to "
             f"Temporal, but it did not answer its status query ({why_not_live or 'no answer'}) and the ledger "
             "holds nothing for it yet; start a worker (`handrail up`) and ask again.")
    raise NotARun(doc)
