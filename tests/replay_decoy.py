"""A workflow registered under EgressBlock's name that does something else (no activity).

Replaying a real EgressBlock history with it must fail: proof the replay tests can fail.
It imports only temporalio, so the sandbox loads it cheaply.
"""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="EgressBlock")
class DecoyEgressBlock:
    @workflow.run
    async def run(self, trigger: dict) -> dict:
        return {}
