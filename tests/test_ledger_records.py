"""Change and revert records are part of the hash chain: an edited row is refused and named."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from handrail.gate.ledger import Ledger, UntrustedRecord
from handrail.gate.models import AuditEvent, Change, ChangeRecord, Mode

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
CHANGE_ID = "run-1/s01-firewall.egress_block"
# the edit an attacker with write access to the file would make: the undo becomes a block of the CRM
BLOCK_THE_CRM = ("UPDATE changes SET body = json_set(body, '$.inverse.kind', 'firewall.egress_block',"
                 " '$.inverse.target', '161.71.0.0/16')")


def applied(ledger: Ledger) -> ChangeRecord:
    """A change written as apply_change writes it: row and chained event together."""
    record = ChangeRecord(change_id=CHANGE_ID, run_id="run-1", step_id="s01-firewall.egress_block",
                          change=Change(kind="firewall.egress_block", target="203.0.113.1"),
                          before={"blocked": False}, mode=Mode.APPROVE, requested_by="alice", applied_at=T0)
    record = ledger.begin_change(record)
    record.status, record.after = "applied", {"blocked": True}
    record.inverse = Change(kind="firewall.egress_unblock", target="203.0.113.1")
    event = AuditEvent(id=f"{CHANGE_ID}:change.applied", at=T0, run_id="run-1", step_id=record.step_id,
                       event="change.applied", data=record.model_dump(mode="json"))
    ledger.finish_change(record, event)
    ledger.append([AuditEvent(id="run-1:9", at=T0, run_id="run-1", event="run.finished")])
    return record


def tamper(path, sql: str) -> None:
    db = sqlite3.connect(path)
    db.execute(sql)
    db.commit()
    db.close()


def test_a_chained_change_reads_back_verified(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    record = applied(ledger)
    assert ledger.verified_change(CHANGE_ID).inverse == record.inverse
    assert ledger.verify().ok


def test_an_inverse_edited_in_the_file_is_refused_and_named(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    applied(ledger)
    tamper(tmp_path / "l.db", BLOCK_THE_CRM)
    assert ledger.change(CHANGE_ID).inverse.target == "161.71.0.0/16"  # the row really was edited
    with pytest.raises(UntrustedRecord, match=CHANGE_ID):
        ledger.verified_change(CHANGE_ID)
    [refused] = ledger.verified_changes_for_run("run-1")
    assert isinstance(refused, UntrustedRecord)
    result = ledger.verify()
    assert not result.ok and result.bad_change == CHANGE_ID and "differs" in result.reason


def test_editing_the_chained_event_too_breaks_the_chain(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    applied(ledger)
    for table in ("changes", "audit"):
        tamper(tmp_path / "l.db", f"UPDATE {table} SET body = replace(body, '203.0.113.1', '161.71.0.0/16')")
    with pytest.raises(UntrustedRecord, match="does not match its hash"):
        ledger.verified_change(CHANGE_ID)


def test_a_forged_or_removed_revert_is_refused(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    applied(ledger)
    tamper(tmp_path / "l.db", f"INSERT INTO reverts VALUES ('{CHANGE_ID}', 'run-1', 'rollback', 'mallory',"
                              " '2026-11-01T00:00:00+00:00', 1, 'ok')")
    with pytest.raises(UntrustedRecord, match="revert row has no audit event"):
        ledger.verified_change(CHANGE_ID)

    other = Ledger(tmp_path / "m.db")
    applied(other)
    event = AuditEvent(id=f"{CHANGE_ID}:reverted:change.reverted", at=T0, run_id="run-1", event="change.reverted",
                       data={"change_id": CHANGE_ID, "reason": "expiry", "by": "handrail", "verified": True,
                             "detail": "ok"})
    assert other.record_revert(CHANGE_ID, "run-1", "expiry", "handrail", T0, True, "ok", event=event)
    assert other.verified_change(CHANGE_ID).reverted_by == "handrail"
    tamper(tmp_path / "m.db", "DELETE FROM reverts")
    with pytest.raises(UntrustedRecord, match="revert row was removed"):
        other.verified_change(CHANGE_ID)


def test_an_intent_written_ahead_with_its_inverse_is_chained_at_once(tmp_path):
    """A change recorded before its tool call, inverse included, can be undone safely before it finishes."""
    ledger = Ledger(tmp_path / "l.db")
    record = ChangeRecord(change_id=CHANGE_ID, run_id="run-1", step_id="s01", before={"blocked": False},
                          change=Change(kind="firewall.egress_block", target="203.0.113.1"),
                          inverse=Change(kind="firewall.egress_unblock", target="203.0.113.1"),
                          mode=Mode.LOGGED, requested_by="alice", applied_at=T0)
    ledger.begin_change(record)
    ledger.begin_change(record)  # a retry chains nothing twice
    assert ledger.verified_change(CHANGE_ID).inverse.kind == "firewall.egress_unblock"
    assert [r["event"] for r in ledger.audit_rows("run-1")] == ["change.pending"]
    record.status, record.after = "applied", {"blocked": True}
    ledger.finish_change(record)  # settled later: chained again, under its new status
    assert ledger.verified_change(CHANGE_ID).status == "applied" and ledger.verify().ok
    tamper(tmp_path / "l.db", BLOCK_THE_CRM)
    with pytest.raises(UntrustedRecord, match="differs from the audit event"):
        ledger.verified_change(CHANGE_ID)
