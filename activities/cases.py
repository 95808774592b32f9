"""The case tool as every runbook uses it: find the run's case, append to it.

Opening and closing a case are gated changes (`cases.open`, `cases.close` in
`handrail/actions/cases.py`); these two activities are the read that finds the case a
run opened and the audited append (`Runbook.record`) of a note or an artefact.
"""

from __future__ import annotations

from temporalio import activity

from activities.context import WorkerContext
from activities.errors import tool_failure
from handrail.runbooks.cases import CaseEntry, CaseLookup, CaseRef
from handrail.tools.errors import ToolError


class CaseActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.tools = ctx.tools

    @activity.defn
    async def case_of_run(self, request: CaseLookup) -> CaseRef:
        """The run's case: the open one if any, else the newest closed one."""
        try:
            cases = await self.tools.cases.list_cases(run_id=request.run_id)
        except ToolError as exc:
            raise tool_failure(exc, "looking up the run's case failed") from None
        open_first = sorted(cases, key=lambda c: (c.status != "open", c.id))
        return CaseRef(case_id=open_first[0].id if open_first else None)

    @activity.defn
    async def case_add(self, entry: CaseEntry) -> str:
        """Append a note or an artefact reference to the case file (idempotent by key)."""
        try:
            if entry.artefact_kind and entry.artefact_ref:
                added = await self.tools.cases.add_artefact(
                    entry.case_id, entry.artefact_kind, entry.artefact_ref, description=entry.text,
                    idempotency_key=entry.key,
                )
            else:
                added = await self.tools.cases.add_note(entry.case_id, entry.author, entry.text,
                                                        idempotency_key=entry.key)
        except ToolError as exc:
            raise tool_failure(exc, f"adding to case {entry.case_id} failed") from None
        return added.id
