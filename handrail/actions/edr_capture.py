"""EDR packet-capture actions (owner: phishing runbook): capture a host's traffic to a case.

The target is the hostname; `params` carry `case_id`, an optional BPF `filter` and
`duration_s`. The before-state is whether a capture runs on the host (and for which
case), so a capture someone else started is never stopped by a rollback. Stopping a
capture files it as evidence (an artefact outside the estate); undoing a stop starts a
new capture for the same case.
"""

from __future__ import annotations

from handrail.gate.models import Change


class EdrStartCapture:
    kind = "edr.start_capture"

    async def read(self, tools, change):
        capture = await tools.edr.get_capture(change.target)
        if capture is None:
            return {"capturing": False, "case_id": None}
        return {"capturing": True, "case_id": capture.case_id}

    def wanted(self, change, state):
        return bool(state["capturing"])

    async def apply(self, tools, change, key):
        p = change.params
        duration = p.get("duration_s")
        await tools.edr.start_capture(change.target, str(p.get("case_id") or ""), filter=str(p.get("filter") or ""),
                                      duration_s=int(duration) if duration else None, idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="edr.stop_capture", target=change.target)


class EdrStopCapture:
    kind = "edr.stop_capture"

    async def read(self, tools, change):
        return await EdrStartCapture().read(tools, change)

    def wanted(self, change, state):
        return not state["capturing"]

    async def apply(self, tools, change, key):
        await tools.edr.stop_capture(change.target, idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="edr.start_capture", target=change.target, params={"case_id": before.get("case_id")})
