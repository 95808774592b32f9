"""`handrail lab …` (starter/lab_cmd.py) against an in-process lab."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from handrail.ops.config import load_settings
from handrail.tools import ToolClients
from lab.app import create_app
from lab.testing import lab_settings, prepare
from starter import lab_cmd

pytestmark = pytest.mark.unit
runner = CliRunner()


@pytest.fixture
def app(tmp_path, monkeypatch):
    settings = lab_settings(tmp_path)
    prepare(settings)
    app = create_app(settings)
    monkeypatch.setattr(lab_cmd, "_clients", lambda: ToolClients.from_settings(
        settings, transport=httpx.ASGITransport(app)))
    yield app
    app.state.store.close()


def test_state_json_prints_one_document(app):
    result = runner.invoke(lab_cmd.lab_app, ["state", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["hash"]) == 64 and "firewall" in doc["tools"]


def test_state_table(app):
    result = runner.invoke(lab_cmd.lab_app, ["state"])
    assert result.exit_code == 0
    assert "estate hash" in result.stdout and "firewall" in result.stdout


def test_faults_add_list_clear_and_reset(app):
    r = runner.invoke(lab_cmd.lab_app, ["faults", "--route", "/firewall/*", "--error-rate",
                                        "0.5", "--seed", "3", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["route"] == "/firewall/*"
    listed = json.loads(runner.invoke(lab_cmd.lab_app, ["faults", "--json"]).stdout)
    assert [f["seed"] for f in listed["faults"]] == [3]
    assert "/firewall/*" in runner.invoke(lab_cmd.lab_app, ["faults"]).stdout
    cleared = json.loads(runner.invoke(lab_cmd.lab_app, ["faults", "--clear", "--json"]).stdout)
    assert cleared == {"cleared": 1}
    reset = runner.invoke(lab_cmd.lab_app, ["reset", "--json"])
    assert reset.exit_code == 0 and json.loads(reset.stdout)["ok"] is True


def test_bad_fault_is_one_sentence_exit_1(app):
    r = runner.invoke(lab_cmd.lab_app, ["faults", "--route", "^(", "--status", "418"])
    assert r.exit_code == 1
    assert "Traceback" not in r.output and r.stderr.strip().endswith(".")


def test_lab_not_running(monkeypatch):
    settings = load_settings({"HANDRAIL_HOME": "/tmp/unused",
                              "HANDRAIL_LAB_URL": "http://127.0.0.1:9"})
    monkeypatch.setattr(lab_cmd, "_clients", lambda: ToolClients.from_settings(settings))
    r = runner.invoke(lab_cmd.lab_app, ["state", "--json"])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.strip() == ("The lab at http://127.0.0.1:9 is not answering; "
                                "start it with `handrail up`.")
