"""Registry of action kinds: which tool each kind of change touches and how to undo it.

The gate knows nothing about firewalls; it asks this registry. An action reads the state
it is about to change (the before-state the ledger keeps), applies the change with the
idempotency key, and names the inverse change that restores the before-state. When the
tool was already in the wanted state, the action changes nothing and has no inverse, so a
rollback never removes a block that someone else put there.
"""

from __future__ import annotations

from handrail.actions import (  # exfiltration runbook (training shared)  # privilege-guard and rogue-device runbooks
    cases,
    dlp,
    dns,
    edr,
    edr_capture,
    exfiltration,
    firewall,
    iam,
    nac,
    proxy,
    siem,
    takedown,
    training,
)
from handrail.actions.base import Action, UnknownAction
from handrail.actions.intel import BATCH_KINDS, IntelContext, with_set_targets

SINGLE_ACTIONS: dict[str, Action] = {
    action.kind: action
    for action in (
        firewall.EgressBlock(),
        firewall.EgressUnblock(),
        dns.DnsSinkhole(),
        dns.DnsUnsinkhole(),
        proxy.ProxyBlock(),
        proxy.ProxyUnblock(),
        siem.SiemWatch(),
        siem.SiemUnwatch(),
        takedown.TakedownSubmit(),
        takedown.TakedownWithdraw(),
        cases.CasesOpen(),
        cases.CasesClose(),
        cases.CasesReopen(),
        edr_capture.EdrStartCapture(),
        edr_capture.EdrStopCapture(),
        edr.EdrIsolate(),
        edr.EdrRelease(),
        edr.EdrSetTelemetry(),
        training.TrainingEnroll(),
        training.TrainingUnenroll(),
        exfiltration.ClassifyMalicious(),
        exfiltration.WithdrawClassification(),
        dlp.DlpMarkProcessed(),
        dlp.DlpReopen(),
        iam.IamRevokePrivilege(),
        iam.IamGrantPrivilege(),
        iam.IamRecommitPrivilege(),
        nac.NacDisconnect(),
        nac.NacReconnect(),
        nac.NacRecommitDevice(),
        nac.CmdbRegisterDevice(),
        nac.CmdbDeregisterDevice(),
    )
}



class Actions:
    """The action table one worker uses: every single-target kind, and the intel sync's
    batch kinds (``set:<sha256>`` targets of proxy.*, firewall.egress_*, ips.*) bound to
    the worker's intel store. Built once by the worker and handed to its activities."""

    def __init__(self, intel: IntelContext) -> None:
        self._table = with_set_targets(SINGLE_ACTIONS, intel)

    def for_kind(self, kind: str) -> Action:
        try:
            return self._table[kind]
        except KeyError:
            raise UnknownAction(f"no tool action is registered for kind {kind!r}") from None

    def kinds(self) -> list[str]:
        return sorted(self._table)


def action_kinds() -> frozenset[str]:
    """Every kind a step can change: the single-target kinds and the intel sync's batch kinds.
    A step's id is `sNN-KIND` with one of them (`handrail approve --step` checks a name against it)."""
    return frozenset(SINGLE_ACTIONS) | {cls.kind for cls in BATCH_KINDS}


__all__ = ["Action", "Actions", "IntelContext", "SINGLE_ACTIONS", "UnknownAction", "action_kinds"]
