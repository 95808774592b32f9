"""The analyst's classification of a DLP alert, as a gated decision (owner: exfiltration).

`exfiltration.classify_malicious` changes no tool: it exists so that the question "is
this alert malicious?" goes through the gate's approval machinery (approvers, the
requester never deciding, escalation, signals, the ledger's `approved_by`). Approval
means malicious, denial means inadvertent. Applying it records the decision in the
ledger; its inverse withdraws the record and also touches nothing, so a rollback of the
run verifies trivially.
"""

from __future__ import annotations

from handrail.gate.models import Change

_STATE = {"tool": "none: a recorded decision"}


class ClassifyMalicious:
    kind = "exfiltration.classify_malicious"

    async def read(self, tools, change):
        return dict(_STATE)

    def wanted(self, change, state):
        return False  # always recorded: the ledger row is the decision's record

    async def apply(self, tools, change, key):
        return None

    def inverse(self, change, before):
        return Change(kind="exfiltration.withdraw_classification", target=change.target)


class WithdrawClassification:
    kind = "exfiltration.withdraw_classification"

    async def read(self, tools, change):
        return dict(_STATE)

    def wanted(self, change, state):
        return True  # nothing to change in any tool

    async def apply(self, tools, change, key):
        return None

    def inverse(self, change, before):
        return Change(kind="exfiltration.classify_malicious", target=change.target)
