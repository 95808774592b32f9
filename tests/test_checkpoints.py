"""Signed checkpoints of the audit: a removed tail and a wholesale rewrite are both detected."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import stat
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from activities.checkpointer import SIEM_SOURCE, Checkpointer
from handrail.gate.checkpoints import (
    LOG_FILE,
    CheckpointError,
    append_checkpoint,
    installation_key,
    origin_for,
    parse_note,
    verify_ledger,
)
from handrail.gate.ledger import GENESIS, Ledger, _chained
from handrail.gate.models import AuditEvent
from lab.testing import in_process_lab
from starter.cli import app

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def events(n: int, start: int = 0) -> list[AuditEvent]:
    return [AuditEvent(id=f"run-1:{i}", at=T0 + timedelta(seconds=i), run_id="run-1", event="step.requested",
                       data={"i": i}) for i in range(start, start + n)]


def ledger_with_checkpoints(home) -> Ledger:
    ledger = Ledger(home / "ledger.db")
    origin = origin_for(home)
    ledger.append(events(5))
    append_checkpoint(home, ledger, origin, T0)
    ledger.append(events(5, start=5))
    append_checkpoint(home, ledger, origin, T0 + timedelta(minutes=5))
    return ledger


def test_a_checkpoint_is_a_signed_note_chained_to_the_one_before(tmp_path):
    ledger = ledger_with_checkpoints(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "checkpoint-key.pem").st_mode) == 0o600
    key = installation_key(tmp_path).public_key()
    first, second = [parse_note(json.loads(line)["note"], key)
                     for line in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert (first.size, second.size) == (5, 10) and first.prev == "-" and second.prev == first.signature
    assert second.head == ledger.head()[1]
    note = json.loads((tmp_path / LOG_FILE).read_text().splitlines()[1])["note"]
    body, _, signature = note.partition("\n\n")
    assert body.split("\n")[0].startswith("handrail-audit/") and signature.startswith("\u2014 handrail-audit/")
    with pytest.raises(CheckpointError, match="does not verify"):
        parse_note(note.replace("\n10\n", "\n11\n"), key)
    assert verify_ledger(tmp_path, ledger).ok and verify_ledger(tmp_path, ledger).checked == 2


def test_a_removed_tail_is_detected_although_the_chain_still_verifies(tmp_path):
    ledger = ledger_with_checkpoints(tmp_path)
    ledger.close()
    db = sqlite3.connect(tmp_path / "ledger.db")
    db.execute("DELETE FROM audit WHERE seq > 7")
    db.commit()
    db.close()
    ledger = Ledger(tmp_path / "ledger.db")
    assert ledger.verify().ok  # the hash chain alone cannot see a cut tail
    verdict = verify_ledger(tmp_path, ledger)
    assert not verdict.ok and verdict.bad == 2
    assert "counted 10 audit rows but the ledger has only 7" in verdict.reason


def test_a_wholesale_rewrite_with_recomputed_hashes_is_detected(tmp_path):
    ledger = ledger_with_checkpoints(tmp_path)
    forged = events(10)
    forged[3].data = {"i": 3, "note": "this never happened"}
    ledger.close()
    db = sqlite3.connect(tmp_path / "ledger.db")
    db.execute("DELETE FROM audit")
    db.executemany("INSERT INTO audit(event_id, at, run_id, step_id, event, body, prev_hash, hash)"
                   " VALUES (?,?,?,?,?,?,?,?)", list(_chained(GENESIS, forged)))
    db.commit()
    db.close()
    ledger = Ledger(tmp_path / "ledger.db")
    assert ledger.verify().ok  # every hash recomputed: the chain is consistent again
    verdict = verify_ledger(tmp_path, ledger)
    assert not verdict.ok and verdict.bad == 1 and "the chain was rewritten" in verdict.reason

    result = CliRunner().invoke(app, ["audit", "verify", "--json"], env={"HANDRAIL_HOME": str(tmp_path)})
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    assert doc["ok"] is False and doc["bad_checkpoint"] == 1 and "rewritten" in doc["reason"]


def test_an_edited_checkpoint_file_is_named(tmp_path):
    ledger = ledger_with_checkpoints(tmp_path)
    path = tmp_path / LOG_FILE
    first, second = path.read_text().splitlines()
    path.write_text(second + "\n")  # the first checkpoint dropped
    verdict = verify_ledger(tmp_path, ledger)
    assert not verdict.ok and verdict.bad == 1 and "does not follow" in verdict.reason


async def test_the_worker_ships_each_checkpoint_to_the_siem(tmp_path):
    async with in_process_lab(tmp_path / "lab") as lab:
        settings = dataclasses.replace(lab.settings, home=tmp_path)
        ledger = Ledger(tmp_path / "ledger.db")
        ledger.append(events(3))
        checkpoint = await Checkpointer(settings, ledger, lab.tools).checkpoint()
        [shipped] = await lab.tools.siem.search_events(f"source:{SIEM_SOURCE}")
        assert shipped.action == "audit.checkpoint" and f"\n{checkpoint.size}\n" in shipped.message
        assert parse_note(shipped.message, installation_key(tmp_path).public_key()) == checkpoint
        assert verify_ledger(tmp_path, ledger).checked == 1
