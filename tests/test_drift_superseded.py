"""`handrail drift`: a change a later one undid or replaced is not the ledger's word any more."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from handrail.actions import Actions, IntelContext
from handrail.gate.models import Change, ChangeRecord, Mode
from handrail.gate.reconcile import inverse_kind, superseded

pytestmark = pytest.mark.unit

ACTIONS = Actions(IntelContext(store=None, state=None))
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
MAC, RUN = "00:11:22:33:44:55", "rogue-001122334455"


def _record(n: int, kind: str, target: str, before: dict, after: dict, status: str = "applied",
            **params) -> ChangeRecord:
    change = Change(kind=kind, target=target, params=params)
    inverse = None if status == "unchanged" else ACTIONS.for_kind(kind).inverse(change, before)
    return ChangeRecord(change_id=f"c{n}", run_id=RUN, step_id=f"s0{n}", change=change, status=status,
                        before=before, after=after, inverse=inverse, mode=Mode.GUARDED, requested_by="nac",
                        applied_at=T0 + timedelta(minutes=n))


def _superseded(*latest: tuple[ChangeRecord, bool]) -> set[str]:
    newest_first = sorted(latest, key=lambda pair: pair[0].applied_at, reverse=True)
    return superseded(newest_first, lambda record: inverse_kind(record, ACTIONS))


def _rogue_registered() -> list[ChangeRecord]:
    """The ledger after a rogue device run whose analyst approved "register it"."""
    return [
        _record(1, "nac.disconnect", MAC, {"connected": True}, {"connected": False}, reason="rogue"),
        _record(2, "cases.open", RUN, {"open": False, "case_ids": []}, {"open": True, "case_ids": ["C1"]}),
        _record(3, "nac.recommit_device", MAC, {"connected": False}, {"connected": True}),
        _record(4, "cmdb.register_device", MAC, {"registered": False}, {"registered": True, "hostname": "cam"}),
        _record(5, "cases.close", RUN, {"open": True, "case_ids": ["C1"]}, {"open": False, "case_ids": []},
                resolution="declared legitimate"),
    ]


def test_the_rogue_flow_recommit_and_close_supersede_the_disconnect_and_the_case():
    ids = _superseded(*[(r, False) for r in _rogue_registered()])
    assert ids == {"c1", "c2"}  # the recommit, the registration and the close are checked against the tools


def test_a_later_change_that_was_itself_reverted_supersedes_nothing():
    disconnect, case, recommit, register, close = _rogue_registered()
    # the recommit and the close were rolled back (newest first) but the rollback stopped there
    ids = _superseded((disconnect, False), (case, False), (recommit, True), (register, False), (close, True))
    assert ids == set()


def test_only_a_later_change_to_the_same_facet_supersedes():
    disconnect, case, recommit, register, close = _rogue_registered()
    assert _superseded((recommit, False), (register, False)) == set()  # register is another facet of the MAC
    earlier_close = close.model_copy(update={"applied_at": T0})  # closed, then opened again: the open stands
    assert _superseded((case, False), (earlier_close, False)) == {"c5"}


def test_a_grant_of_another_group_never_hides_a_revoked_membership():
    revoke = _record(1, "iam.revoke_privilege", "jdoe", {"group": "Domain Admins", "member": "jdoe", "is_member": True},
                     {"group": "Domain Admins", "member": "jdoe", "is_member": False}, group="Domain Admins")
    other = _record(2, "iam.grant_privilege", "jdoe", {"group": "Printers", "member": "jdoe", "is_member": False},
                    {"group": "Printers", "member": "jdoe", "is_member": True}, group="Printers")
    same = _record(3, "iam.recommit_privilege", "jdoe",
                   {"group": "Domain Admins", "member": "jdoe", "is_member": False},
                   {"group": "Domain Admins", "member": "jdoe", "is_member": True}, group="Domain Admins")
    assert _superseded((revoke, False), (other, False)) == set()
    assert _superseded((revoke, False), (other, False), (same, False)) == {"c1"}  # the Printers grant stands


def test_an_unchanged_later_change_still_speaks_for_the_target():
    # reconnected by hand, then the analyst's recommit found it connected: the ledger's word is "connected"
    disconnect = _rogue_registered()[0]
    recommit = _record(3, "nac.recommit_device", MAC, {"connected": True}, {"connected": True}, status="unchanged")
    assert recommit.inverse is None and inverse_kind(recommit, ACTIONS) == "nac.disconnect"
    assert _superseded((disconnect, False), (recommit, False)) == {"c1"}
