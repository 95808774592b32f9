"""HANDRAIL_TOOLS: the one place that chooses each tool's backend (no servers needed)."""

from __future__ import annotations

import pytest

from handrail.ops.config import load_settings
from handrail.ops.tools_config import ToolsConfigError, load_tools_config
from handrail.tools import ToolClients
from handrail.tools.dns import LabDns
from handrail.tools.firewall import LabFirewall
from handrail.tools.mailbox import LabMailbox

pytestmark = pytest.mark.unit


def settings(tmp_path, tools_file=None):
    env = {"HANDRAIL_HOME": str(tmp_path / "home")}
    if tools_file:
        env["HANDRAIL_TOOLS"] = str(tools_file)
    return load_settings(env)


async def test_without_a_tools_file_every_tool_is_the_lab(tmp_path):
    s = settings(tmp_path)
    assert s.tools_path is None and set(load_tools_config(None).backends().values()) == {"lab"}
    async with ToolClients.from_settings(s) as tools:
        assert isinstance(tools.dns, LabDns) and isinstance(tools.mailbox, LabMailbox)
    assert not (s.home / "tools-journal.db").exists()


async def test_the_tools_file_swaps_only_the_named_tools(tmp_path):
    path = tmp_path / "tools.toml"
    path.write_text(f"""
[tools]
mailbox = "lab"

[tools.dns]
backend = "rpz"
zone_file = "{tmp_path}/rpz.zone"
reload_command = ["true"]

[tools.alerts]
backend = "syslog"
host = "127.0.0.1"
port = 6514
""")
    async with ToolClients.from_settings(settings(tmp_path, path)) as tools:
        assert type(tools.dns).__name__ == "RpzSinkhole" and type(tools.alerts).__name__ == "SyslogAlerts"
        assert isinstance(tools.firewall, LabFirewall) and isinstance(tools.mailbox, LabMailbox)
        assert await tools.dns.list_sinkholes() == []  # no zone yet: nothing sinkholed
        await tools.dns.sinkhole("evil.example", idempotency_key="k")
        assert [s.domain for s in await tools.dns.list_sinkholes()] == ["evil.example"]
    assert (tmp_path / "home" / "tools-journal.db").exists()


@pytest.mark.parametrize("text, words", [
    ('[tools.dns]\nbackend = "bind9"\n', "tools.dns"),
    ('[tools.dns]\nbackend = "rpz"\n', "zone_file"),
    ('[tools.printer]\nbackend = "lab"\n', "printer"),
    ('[tools.firewall]\nbackend = "nftables"\nsurprise = 1\n', "surprise"),
    ('[tools.intel]\nbackend = "taxii"\napi_root = "https://t/api1/"\ntoken = "abc"\n', "environment"),
    ("[tools\n", "not valid TOML"),
])
def test_a_bad_tools_file_is_refused_in_one_sentence(tmp_path, text, words):
    path = tmp_path / "tools.toml"
    path.write_text(text)
    with pytest.raises(ToolsConfigError) as exc:
        load_tools_config(path)
    assert words in str(exc.value) and str(exc.value).endswith(".") and "\n" not in str(exc.value)


def test_a_missing_tools_file_is_named(tmp_path):
    with pytest.raises(ToolsConfigError, match="does not exist"):
        load_tools_config(tmp_path / "nope.toml")
