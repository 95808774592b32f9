"""Case-management actions (owner: phishing runbook): open an incident case for a run.

The target is the run id (a run opens at most one case; the case carries `run_id`).
`params` hold the title, severity, description and `artefacts`, a JSON list of `{"kind",
"ref", "description"}` attached right after the case is created (each with a key derived
from the step's, so a retried step attaches nothing twice). A case is evidence: undoing
`cases.open` closes the case (resolution "rolled back") rather than deleting it, and the
state both compare is "is there an open case for this run".
"""

from __future__ import annotations

import json

from handrail.gate.models import Change
from handrail.gate.redact import redact_text


async def _open_cases(tools, run_id: str):
    return await tools.cases.list_cases(status="open", run_id=run_id)


class CasesOpen:
    kind = "cases.open"

    async def read(self, tools, change):
        cases = await _open_cases(tools, change.target)
        return {"open": bool(cases), "case_ids": sorted(c.id for c in cases)}

    def wanted(self, change, state):
        return bool(state["open"])

    async def apply(self, tools, change, key):
        p = change.params
        case = await tools.cases.create_case(  # evidence is kept: no credential goes into it
            redact_text(str(p.get("title") or f"Handrail run {change.target}")),
            description=redact_text(str(p.get("description") or "")),
            severity=str(p.get("severity") or "high"),
            run_id=change.target,
            idempotency_key=key,
        )
        for i, art in enumerate(json.loads(str(p.get("artefacts") or "[]")), start=1):
            await tools.cases.add_artefact(case.id, art["kind"], art["ref"],
                                           description=redact_text(art.get("description", "")),
                                           idempotency_key=f"{key}:artefact-{i}")

    def inverse(self, change, before):
        return Change(kind="cases.close", target=change.target, params={"resolution": "rolled back"})


class CasesClose:
    kind = "cases.close"

    async def read(self, tools, change):
        return await CasesOpen().read(tools, change)

    def wanted(self, change, state):
        return not state["open"]

    async def apply(self, tools, change, key):
        for case in await _open_cases(tools, change.target):
            await tools.cases.close_case(case.id, str(change.params.get("resolution") or "closed"),
                                         idempotency_key=f"{key}:{case.id}")

    def inverse(self, change, before):
        return Change(kind="cases.reopen", target=change.target)


class CasesReopen:
    kind = "cases.reopen"

    async def read(self, tools, change):
        return await CasesOpen().read(tools, change)

    def wanted(self, change, state):
        return bool(state["open"])

    async def apply(self, tools, change, key):
        for case in await tools.cases.list_cases(status="closed", run_id=change.target):
            await tools.cases.reopen_case(case.id, idempotency_key=f"{key}:{case.id}")

    def inverse(self, change, before):
        return Change(kind="cases.close", target=change.target, params={"resolution": "closed"})
