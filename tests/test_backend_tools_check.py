"""`handrail tools check` against real servers: what a user sees before their first run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from starter import tools_cmd
from tests.backend_servers import dovecot, free_port, medallion, netns, rsyslog, unbound, write_tools_file

pytestmark = pytest.mark.backends
runner = CliRunner()


@pytest.fixture
def servers(tmp_path):
    with unbound(tmp_path / "unbound") as dns_server, rsyslog(tmp_path / "rsyslog") as syslog, \
            dovecot(tmp_path / "dovecot") as imap, netns() as ns, medallion(tmp_path / "taxii") as taxii:
        yield {"dns": dns_server, "syslog": syslog, "imap": imap, "ns": ns, "taxii": taxii}


def configure(tmp_path, monkeypatch, s, **override) -> None:
    tools = {
        "mailbox": {"backend": "imap", "host": "127.0.0.1", "port": s["imap"]["imaps_port"], "security": "tls",
                    "username": s["imap"]["user"], "password_env": "CHECK_IMAP_PW", "ca_file": s["imap"]["ca_file"]},
        "dns": {"backend": "rpz", "zone_file": s["dns"]["zone_file"], "reload_command": s["dns"]["reload"],
                "resolver": f"127.0.0.1:{s['dns']['port']}"},
        "firewall": {"backend": "nftables", "nft_command": ["ip", "netns", "exec", s["ns"], "nft"]},
        "alerts": {"backend": "syslog", "host": "127.0.0.1", "port": s["syslog"]["port"]},
        "intel": {"backend": "taxii", "api_root": s["taxii"]["api_root"], "username": s["taxii"]["user"],
                  "password_env": "CHECK_TAXII_PW", "http_feeds": False},
    }
    for name, changes in override.items():
        tools[name].update(changes)
    monkeypatch.setenv("HANDRAIL_TOOLS", str(write_tools_file(tmp_path / "tools.toml", tools)))
    monkeypatch.setenv("HANDRAIL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHECK_IMAP_PW", s["imap"]["password"])
    monkeypatch.setenv("CHECK_TAXII_PW", s["taxii"]["password"])


ARGS = ["check", "--tool", "mailbox", "--tool", "dns", "--tool", "firewall", "--tool", "alerts", "--tool", "intel",
        "--json"]



def test_every_configured_backend_is_reachable_and_says_what_it_read(servers, tmp_path, monkeypatch):
    configure(tmp_path, monkeypatch, servers)
    result = runner.invoke(tools_cmd.tools_app, ARGS)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    by_tool = {t["tool"]: t for t in doc["tools"]}
    assert {t: r["backend"] for t, r in by_tool.items()} == {"mailbox": "imap", "dns": "rpz", "intel": "taxii",
                                                              "firewall": "nftables", "alerts": "syslog"}
    assert all(r["reachable"] and r["authenticated"] and r["error"] is None for r in by_tool.values())
    assert by_tool["mailbox"]["read"] == "0 message(s), 0 unprocessed"
    assert by_tool["dns"]["read"].startswith("0 sinkholed domain(s); resolver 127.0.0.1:")
    assert by_tool["firewall"]["read"].startswith("0 egress")
    assert "accepts connections" in by_tool["alerts"]["read"]
    assert by_tool["intel"]["read"] == "1 feed(s): taxii:phish-indicators"
    assert not servers["syslog"]["file"].exists() or servers["syslog"]["file"].read_text() == ""


def test_wrong_password_and_unreachable_tools_fail_the_check(servers, tmp_path, monkeypatch):
    configure(tmp_path, monkeypatch, servers, alerts={"port": free_port()})
    monkeypatch.setenv("CHECK_IMAP_PW", "not-the-password")
    result = runner.invoke(tools_cmd.tools_app, ARGS)
    assert result.exit_code == 1
    by_tool = {t["tool"]: t for t in json.loads(result.stdout)["tools"]}
    assert by_tool["mailbox"]["reachable"] and not by_tool["mailbox"]["authenticated"]
    assert "not-the-password" not in result.stdout
    assert not by_tool["alerts"]["reachable"] and by_tool["alerts"]["error"].endswith(".")
    assert by_tool["dns"]["reachable"] and by_tool["dns"]["authenticated"]


def test_a_bad_tools_file_is_one_sentence(tmp_path, monkeypatch):
    bad = tmp_path / "tools.toml"
    bad.write_text('[tools.dns]\nbackend = "bind9"\n')
    monkeypatch.setenv("HANDRAIL_TOOLS", str(bad))
    monkeypatch.setenv("HANDRAIL_HOME", str(tmp_path / "home"))
    result = runner.invoke(tools_cmd.tools_app, ["check", "--json"])
    assert result.exit_code == 1 and "tools.dns" in json.loads(result.stdout)["error"]
    assert runner.invoke(tools_cmd.tools_app, ["check", "--tool", "printer"]).exit_code == 2
