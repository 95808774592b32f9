"""The ledger's hash chain, idempotent writes and tamper detection."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from handrail.gate.ledger import Ledger
from handrail.gate.models import AuditEvent, Change, ChangeRecord, Mode

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def events(n: int, run: str = "run-1") -> list[AuditEvent]:
    return [AuditEvent(id=f"{run}:{i}", at=T0 + timedelta(seconds=i), run_id=run, event="step.requested",
                       data={"i": i, "token": "s3cret", "note": "Authorization: Bearer abc.def"}) for i in range(n)]


def test_chain_verifies_and_retries_do_not_duplicate(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    assert ledger.append(events(5)) == 5
    assert ledger.append(events(5)) == 0  # an activity retry
    result = ledger.verify()
    assert result.ok and result.rows == 5


def test_secrets_never_reach_the_audit(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    ledger.append(events(1))
    raw = (tmp_path / "l.db").read_bytes()
    assert b"s3cret" not in raw and b"abc.def" not in raw
    row = next(ledger.audit_rows())
    assert row["data"]["token"] == "[redacted]"


@pytest.mark.parametrize(
    "sql, reason",
    [
        ("UPDATE audit SET body = replace(body, '\"i\":2', '\"i\":9') WHERE seq = 3", "content does not match"),
        ("DELETE FROM audit WHERE seq = 3", "previous-row hash"),
        ("UPDATE audit SET event = 'x' WHERE seq = 3", "indexed columns"),
    ],
)
def test_tampering_is_reported_at_the_first_bad_row(tmp_path, sql, reason):
    ledger = Ledger(tmp_path / "l.db")
    ledger.append(events(6))
    ledger.close()
    db = sqlite3.connect(tmp_path / "l.db")
    db.execute(sql)
    db.commit()
    db.close()
    result = Ledger(tmp_path / "l.db").verify()
    assert not result.ok
    assert result.first_bad_seq in (3, 4)
    assert reason in result.reason


def test_changes_keep_the_first_before_state_and_revert_once(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    record = ChangeRecord(change_id="run-1/s01", run_id="run-1", step_id="s01",
                          change=Change(kind="firewall.egress_block", target="203.0.113.1"),
                          before={"blocked": False}, mode=Mode.APPROVE, requested_by="alice", applied_at=T0)
    first = ledger.begin_change(record)
    retry = ledger.begin_change(record.model_copy(update={"before": {"blocked": True}}))
    assert first.before == retry.before == {"blocked": False}
    assert ledger.count_changes("firewall.egress_block", T0 - timedelta(hours=1)) == 1
    assert ledger.record_revert("run-1/s01", "run-1", "rollback", "bob", T0, True, "ok")
    assert not ledger.record_revert("run-1/s01", "run-1", "expiry", "ttl", T0, True, "ok")
    assert ledger.change("run-1/s01").reverted_by == "bob"
