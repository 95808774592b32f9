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
    siem,
    takedown,
    training,
)
from handrail.actions.base import Action, UnknownAction

ACTIONS: dict[str, Action] = {
    action.kind: action
    for action in (
        firewall.EgressBlock(),
        firewall.EgressUnblock(),
        dns.DnsSinkhole(),
        dns.DnsUnsinkhole(),
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

# Intel sync: proxy.*, firewall.egress_*, ips.* also take `set:<sha256>` batch targets
# (handrail/actions/intel.py); other targets still go to the single-target action above.
from handrail.actions.intel import with_set_targets  # noqa: E402

ACTIONS = with_set_targets(ACTIONS)


def action_for(kind: str) -> Action:
    try:
        return ACTIONS[kind]
    except KeyError:
        raise UnknownAction(f"no tool action is registered for kind {kind!r}") from None


__all__ = ["ACTIONS", "Action", "UnknownAction", "action_for"]
