"""Tool credentials stay with the workers: the lab's admin routes and tool routes take different tokens,
and a default or empty token is refused off loopback."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from handrail.ops.config import load_settings
from handrail.ops.credentials import CredentialError, check_lab_tokens, check_token
from handrail.tools import ToolClients
from lab.testing import in_process_lab
from starter import lab_cmd

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("where", ["http://127.0.0.1:8787", "http://localhost:1", "http://[::1]:8787", "127.0.0.1"])
def test_dev_tokens_are_fine_on_loopback(where):
    assert check_token("handrail-dev-token", where, "HANDRAIL_LAB_TOKEN") == "handrail-dev-token"


@pytest.mark.parametrize("token, words", [("", "is empty"), ("handrail-dev-token", "built-in development token"),
                                          ("handrail-dev-admin-token", "built-in development token")])
def test_empty_or_default_tokens_are_refused_off_loopback(token, words):
    with pytest.raises(CredentialError, match=words):
        check_token(token, "https://lab.corp.example", "HANDRAIL_LAB_TOKEN")
    settings = load_settings({"HANDRAIL_HOME": "/tmp/unused", "HANDRAIL_LAB_URL": "http://10.1.2.3:8787",
                              "HANDRAIL_LAB_TOKEN": token, "HANDRAIL_LAB_ADMIN_TOKEN": token})
    with pytest.raises(CredentialError, match="not a loopback address"):
        ToolClients.from_settings(settings)
    with pytest.raises(CredentialError):
        ToolClients.for_admin(settings)


def test_the_two_lab_tokens_must_differ():
    with pytest.raises(CredentialError, match="must differ"):
        check_lab_tokens("s3cret-a", "s3cret-a", "10.0.0.5")
    check_lab_tokens("s3cret-a", "s3cret-b", "10.0.0.5")


async def test_tool_tokens_never_administer_the_lab_and_the_admin_token_reaches_no_tool(tmp_path):
    async with in_process_lab(tmp_path) as lab:
        async with lab.client(lab.settings.lab_token) as tool:
            refused = await tool.get("/_lab/state")
            assert refused.status_code == 401 and "HANDRAIL_LAB_ADMIN_TOKEN" in refused.json()["error"]
            assert (await tool.post("/_lab/reset")).status_code == 401
            assert (await tool.get("/firewall/egress")).status_code == 200
        async with lab.client(lab.settings.lab_admin_token) as admin:
            assert (await admin.get("/_lab/state")).status_code == 200
            assert (await admin.get("/firewall/egress")).status_code == 401
            assert (await admin.post("/firewall/egress", json={"value": "161.71.0.0/16"})).status_code == 401


def test_handrail_lab_needs_no_tool_token(tmp_path, monkeypatch):
    """`handrail lab state` with HANDRAIL_LAB_TOKEN absent and a lab whose tool token is a secret."""
    import httpx

    from lab.app import create_app
    from lab.testing import lab_settings, prepare

    lab_side = lab_settings(tmp_path, HANDRAIL_LAB_TOKEN="tool-secret-only-workers-know",
                            HANDRAIL_LAB_ADMIN_TOKEN="admin-secret")
    prepare(lab_side)
    app = create_app(lab_side)
    cli_env = {"HANDRAIL_HOME": str(tmp_path), "HANDRAIL_LAB_ADMIN_TOKEN": "admin-secret"}
    monkeypatch.delenv("HANDRAIL_LAB_TOKEN", raising=False)
    monkeypatch.setattr(lab_cmd, "_clients", lambda: ToolClients.for_admin(
        load_settings(cli_env), transport=httpx.ASGITransport(app)))
    result = CliRunner().invoke(lab_cmd.lab_app, ["state", "--json"])
    assert result.exit_code == 0, result.output
    assert "firewall" in json.loads(result.stdout)["tools"]
    app.state.store.close()
