"""A phishing run's full parse is evidence in the store every worker shares: stored once by
its own hash, found from another worker's home on PostgreSQL, and shown by
`handrail phishing evidence RUN|REF`; a reference that names nothing readable is one sentence."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

from handrail.gate.ledger import Ledger
from handrail.gate.models import AuditEvent
from handrail.intel.backends import open_store
from handrail.intel.store import IntelStore
from handrail.ops.config import load_settings
from handrail.runbooks.phishing.evidence import REF_PREFIX, EvidenceMissing, load_evidence, store_evidence
from tests.pg_support import fresh_database

PARSE = {"sender": "billing@evil.example", "subject": "Invoice", "urls": ["http://evil.example/pay"],
         "domains": ["evil.example"], "attachments": [], "message_sha256": "ab" * 32,
         "verdicts": {"domains": [{"domain": "evil.example", "url": "http://evil.example/pay", "score": 6,
                                   "confidence": "high", "action": "sinkhole", "evidence": ["new domain"]}]}}


@pytest.mark.unit
def test_the_parse_is_stored_once_by_its_own_hash_and_read_back(tmp_path):
    store = IntelStore(tmp_path / "store")
    ref = store_evidence(store, PARSE)
    assert ref.startswith(REF_PREFIX) and store_evidence(store, dict(reversed(PARSE.items()))) == ref
    assert load_evidence(store, ref) == PARSE


@pytest.mark.unit
@pytest.mark.parametrize("ref, why", [
    (REF_PREFIX + "0" * 64, "is not in this installation's store"),
    (REF_PREFIX + "../../etc/passwd", "is not a stored parse reference"),
    ("/no/such/worker/file.json", "is not on this host"),
    ("phishing/abc.json", "is not a parse reference"),
    ("", "is not a parse reference"),
])
def test_a_reference_that_names_nothing_readable_is_one_sentence(tmp_path, ref, why):
    with pytest.raises(EvidenceMissing, match=why):
        load_evidence(IntelStore(tmp_path / "store"), ref)


@pytest.mark.unit
def test_a_stored_blob_that_is_not_a_parse_is_refused(tmp_path):
    store = IntelStore(tmp_path / "store")
    not_json = REF_PREFIX + store.put_blob(b"\xff\xfe not json", "json")
    a_list = REF_PREFIX + store.put_blob(b"[1, 2]", "json")
    with pytest.raises(EvidenceMissing, match="does not hold a JSON document"):
        load_evidence(store, not_json)
    with pytest.raises(EvidenceMissing, match="does not hold a parse"):
        load_evidence(store, a_list)


@pytest.mark.integration
def test_the_cli_finds_a_runs_evidence_through_its_audit(tmp_path):
    from starter.cli import app

    env = {"HANDRAIL_HOME": str(tmp_path / "home")}
    settings = load_settings(env)
    ref = store_evidence(open_store(settings), PARSE)
    ledger = Ledger(settings.ledger_path)
    ledger.append([AuditEvent(id="phishing-1:parsed", at=datetime.now(timezone.utc), run_id="phishing-1",
                              event="phishing.parsed", data={"parse_ref": ref, "sender": PARSE["sender"]})])
    ledger.close()

    by_run = CliRunner().invoke(app, ["phishing", "evidence", "phishing-1", "--json"], env=env)
    assert by_run.exit_code == 0, by_run.output
    assert json.loads(by_run.output) == PARSE
    shown = CliRunner().invoke(app, ["phishing", "evidence", ref], env={**env, "COLUMNS": "160"})
    assert shown.exit_code == 0, shown.output
    assert "evil.example" in shown.output and "sinkhole" in shown.output and "billing@evil.example" in shown.output
    unknown = CliRunner().invoke(app, ["phishing", "evidence", "phishing-2"], env=env)
    assert unknown.exit_code != 0 and "recorded no parsed message" in unknown.output


@pytest.mark.postgres
def test_evidence_stored_by_one_worker_is_found_from_another_home_on_postgresql(postgres_url, tmp_path):
    with fresh_database(postgres_url) as url:
        a, b = (load_settings({"HANDRAIL_HOME": str(tmp_path / h), "HANDRAIL_LEDGER_URL": url}) for h in "ab")
        writer = open_store(a)
        ref = store_evidence(writer, PARSE)
        writer.close()  # the parsing worker is gone; another host reads the evidence
        reader = open_store(b)
        try:
            assert load_evidence(reader, ref) == PARSE
            assert not (tmp_path / "a" / "store").exists()  # nothing was left on the parsing host
        finally:
            reader.close()
