"""The incident case every runbook keeps: what crosses the case activities' boundary.

A run opens its case through the gate (`cases.open`, target = the run id; at most one
open case per run) and finds it again by run id; notes and artefact references are
appended through `Runbook.record`, audited, because a case is evidence and is never
edited or deleted.
"""

from __future__ import annotations

from pydantic import BaseModel


class CaseLookup(BaseModel):
    run_id: str


class CaseRef(BaseModel):
    case_id: str | None = None


class CaseEntry(BaseModel):
    """One note, or one artefact reference (kind + ref, with the text as its description)."""

    case_id: str
    key: str
    text: str = ""
    author: str = "handrail"
    artefact_kind: str | None = None
    artefact_ref: str | None = None
