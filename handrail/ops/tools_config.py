"""Which backend each tool uses: the `[tools]` table of the file named by `HANDRAIL_TOOLS`.

This is the one place a deployment points Handrail at its own systems. Every tool not
named (or named with `backend = "lab"`) keeps talking to the lab. Secrets never live in
the file: a backend names the environment variable that holds its password or token
(`password_env = "HANDRAIL_IMAP_PASSWORD"`) and the value is read from the environment
when the clients are built. Example (the README has one section per tool):

    [tools.dns]
    backend = "rpz"
    zone = "rpz.handrail."
    zone_file = "/var/lib/unbound/rpz.handrail.zone"
    reload_command = ["unbound-control", "auth_zone_reload", "{zone}"]
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

TOOL_NAMES = ("mailbox", "dns", "firewall", "alerts", "intel")
_NFT_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"


class ToolsConfigError(ValueError):
    """The tools file is missing, unreadable or names a setting that cannot work."""


class _Backend(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabBackend(_Backend):
    backend: Literal["lab"] = "lab"


class RpzDns(_Backend):
    """A Response Policy Zone file that the resolver loads, rewritten atomically per change."""

    backend: Literal["rpz"]
    zone: str = "rpz.handrail."
    zone_file: Path
    awareness_address: str = "10.20.0.80"
    reload_command: list[str] = Field(default_factory=lambda: ["unbound-control", "auth_zone_reload", "{zone}"])
    flush_command: list[str] = Field(default_factory=list)  # run per changed domain, `{domain}` substituted
    resolver: str | None = None  # "host:port" that `resolve` asks; without it, the zone alone answers
    timeout: float = 5.0

    @field_validator("zone")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return value if value.endswith(".") else value + "."

    @field_validator("awareness_address")
    @classmethod
    def _address(cls, value: str) -> str:
        return str(ipaddress.ip_address(value))


class NftFirewall(_Backend):
    """Two named nftables sets (IPv4 and IPv6, interval flag) in a table whose chains drop egress to them."""

    backend: Literal["nftables"]
    nft_command: list[str] = Field(default_factory=lambda: ["nft"])  # e.g. ["ip", "netns", "exec", "edge", "nft"]
    family: Literal["inet"] = "inet"
    table: str = Field(default="handrail", pattern=_NFT_NAME)
    set_v4: str = Field(default="egress_v4", pattern=_NFT_NAME)
    set_v6: str = Field(default="egress_v6", pattern=_NFT_NAME)
    create: bool = True  # create the table, sets and drop rules when the table is missing
    timeout: float = 10.0


class ImapMailbox(_Backend):
    """The phishing-report mailbox over IMAP; processed messages carry a keyword flag."""

    backend: Literal["imap"]
    host: str
    port: int = 993
    security: Literal["tls", "starttls", "plain"] = "tls"
    username: str
    password_env: str = "HANDRAIL_IMAP_PASSWORD"  # holds the password, or the access token for xoauth2
    auth: Literal["password", "xoauth2"] = "password"
    folder: str = "INBOX"
    processed_flag: str = "$HandrailProcessed"
    ca_file: Path | None = None
    timeout: float = 10.0
    password: str = Field(default="", exclude=True, repr=False)  # filled from password_env, never from the file


class SyslogAlerts(_Backend):
    """SOC alerts as RFC 5424 syslog messages with a CEF payload over TCP (TLS when `tls`)."""

    backend: Literal["syslog"]
    host: str
    port: int = 6514
    tls: bool = False
    ca_file: Path | None = None
    facility: int = Field(default=20, ge=0, le=23)  # local4
    app_name: str = "handrail"
    hostname: str | None = None  # defaults to this machine's name
    # The largest frame the SIEM takes whole. rsyslog (default 8 KiB) cuts a longer one and
    # reads the rest as a message of its own, so a longer alert is shortened to fit instead.
    max_message: int = Field(default=8000, ge=480, le=1_048_576)
    timeout: float = 5.0


class TaxiiIntel(_Backend):
    """TAXII 2.1 collections as STIX feeds named `taxii:<collection>`, beside the lab's HTTP lists."""

    backend: Literal["taxii"]
    api_root: str  # e.g. https://taxii.example/api1/
    collections: list[str] = Field(default_factory=list)  # ids or titles; empty means every readable one
    http_feeds: bool = True  # also list and read the HTTP feed server's lists (false: TAXII only)
    username: str | None = None
    password_env: str = "HANDRAIL_TAXII_PASSWORD"
    token_env: str | None = None  # a bearer token instead of basic auth
    page_size: int = Field(default=500, ge=1, le=10_000)
    max_objects: int = Field(default=200_000, ge=1)
    max_page_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)  # one answer's body, decoded
    deadline: float = Field(default=240.0, gt=0, le=280)  # seconds for a whole collection (the activity has 300)
    verify: bool | str = True
    timeout: float = 20.0
    password: str = Field(default="", exclude=True, repr=False)
    token: str = Field(default="", exclude=True, repr=False)


MailboxConfig = LabBackend | ImapMailbox
DnsConfig = LabBackend | RpzDns
FirewallConfig = LabBackend | NftFirewall
AlertsConfig = LabBackend | SyslogAlerts
IntelConfig = LabBackend | TaxiiIntel


class ToolsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mailbox: MailboxConfig = Field(default_factory=LabBackend, discriminator="backend")
    dns: DnsConfig = Field(default_factory=LabBackend, discriminator="backend")
    firewall: FirewallConfig = Field(default_factory=LabBackend, discriminator="backend")
    alerts: AlertsConfig = Field(default_factory=LabBackend, discriminator="backend")
    intel: IntelConfig = Field(default_factory=LabBackend, discriminator="backend")
    state_dir: Path | None = None  # where the real backends keep their idempotency journal (default HANDRAIL_HOME)

    def backends(self) -> dict[str, str]:
        return {name: getattr(self, name).backend for name in TOOL_NAMES}


_TAGS = {"lab", "rpz", "nftables", "imap", "syslog", "taxii"}


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    if len(loc) > 1 and loc[1] in _TAGS:  # the union's tag, not a key the user wrote
        del loc[1]
    where = ".".join(loc)
    return f"tools.{where}: {err['msg']}"


def parse_tools_config(data: dict, env: dict[str, str] | None = None, *, source: str = "The tools file") -> ToolsConfig:
    env = dict(os.environ if env is None else env)
    table = data.get("tools", {})
    if not isinstance(table, dict):
        raise ToolsConfigError(f"{source}: [tools] must be a table.")
    table = {k: ({"backend": v} if isinstance(v, str) else v) for k, v in table.items()}
    for name, tool in table.items():
        for secret in ("password", "token"):
            if isinstance(tool, dict) and secret in tool:
                raise ToolsConfigError(f"{source}: tools.{name}.{secret} is not read from a file; put it in an "
                                       f"environment variable and name that with {secret}_env.")
    try:
        cfg = ToolsConfig.model_validate(table)
    except ValidationError as exc:
        raise ToolsConfigError(f"{source}: {_first_error(exc)}.") from None
    for name in TOOL_NAMES:
        tool = getattr(cfg, name)
        for field, target in (("password_env", "password"), ("token_env", "token")):
            var = getattr(tool, field, None)
            if var and env.get(var):
                setattr(tool, target, env[var])
    if isinstance(cfg.mailbox, ImapMailbox) and not cfg.mailbox.password:
        raise ToolsConfigError(f"The IMAP mailbox needs its password in the environment variable "
                               f"{cfg.mailbox.password_env}.")
    return cfg


def load_tools_config(path: Path | None, env: dict[str, str] | None = None) -> ToolsConfig:
    """The tools configuration at `path` (None: every tool is the lab)."""
    if path is None:
        return ToolsConfig()
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ToolsConfigError(f"The tools file {path} (HANDRAIL_TOOLS) does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolsConfigError(f"The tools file {path} cannot be read: {exc}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ToolsConfigError(f"The tools file {path} is not valid TOML: {exc}.") from None
    return parse_tools_config(data, env, source=str(path))
