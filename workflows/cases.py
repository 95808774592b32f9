"""A run's incident case, the one way every runbook opens and writes it.

Opening goes through the gate (`cases.open`, so it is audited, guarded and undone by
compensation as `cases.close`); notes and artefacts are appended with `Runbook.record`.
"""

from __future__ import annotations

import json

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from handrail.gate.models import Change, StepRecord
    from handrail.runbooks.cases import CaseEntry, CaseLookup

from workflows.gate import Runbook


class CaseFile:
    """The run's case in the case tool, added to as the run goes (notes and artefacts).

    Every note is also kept in the run's summary (`case_log`), so `handrail show` tells the
    story even when no case could be opened."""

    def __init__(self, rb: Runbook, case_id: str | None):
        self.rb, self.case_id, self._n = rb, case_id, 0

    async def note(self, text: str, **artefact) -> None:
        self.rb.status.summary.setdefault("case_log", []).append(text)
        if not self.case_id:
            return
        self._n += 1
        await self.rb.record(
            CaseActivities.case_add,
            CaseEntry(case_id=self.case_id, key=f"{self.rb.run_id}/case-{self._n}", text=text, **artefact),
            what=f"case {self.case_id}: " + (f"{artefact.get('artefact_kind')} {artefact.get('artefact_ref')}"
                                              if artefact.get("artefact_ref") else "note"),
        )


async def open_case(rb: Runbook, title: str, description: str, *, severity: str = "high",
                    artefacts: list[dict] | None = None, **change_options) -> tuple[StepRecord, CaseFile]:
    """Open the run's case through the gate and find its id; the step says how it went."""
    params = {"title": title[:200], "severity": severity, "description": description[:2000]}
    if artefacts:
        params["artefacts"] = json.dumps(artefacts, sort_keys=True)
    step = await rb.change(Change(kind="cases.open", target=rb.run_id, params=params), **change_options)
    ref = await rb.look(CaseActivities.case_of_run, CaseLookup(run_id=rb.run_id))
    rb.status.summary["case_id"] = ref.case_id
    return step, CaseFile(rb, ref.case_id)
