"""`[settings.notify]` in the policy: over which channels approvers are told a step waits.

    [settings.notify]
    attempts = 3                     # per channel and notice, then `notify.failed` is audited
    timeout = 5.0                    # seconds per attempt

    [[settings.notify.channels]]
    name = "lab"                     # the lab's notification sink (the default, with no section)
    type = "lab"

    [[settings.notify.channels]]
    name = "soc-chat"                # a Slack- or Teams-compatible incoming webhook
    type = "webhook"
    url_env = "HANDRAIL_NOTIFY_SOC_CHAT_URL"

    [[settings.notify.channels]]
    name = "mail"                    # e-mail over SMTP, one message per eligible approver
    type = "smtp"
    host = "smtp.corp.example"
    port = 587
    security = "starttls"            # or "tls" (port 465) or "plain"
    sender = "handrail@corp.example"
    username = "handrail"
    password_env = "HANDRAIL_SMTP_PASSWORD"
    addresses = { alice = "alice@corp.example", bob = "bob@corp.example" }

Secrets never live in the policy (it is shown, diffed and signed): a webhook URL carries its
token, so the policy names the environment variable that holds it, as the tools file does;
the worker reads it when it sends. `handrail policy check` validates this section.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


class NotifySettingsError(ValueError):
    """`[settings.notify]` names a channel that cannot work."""


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _CHANNEL_NAME.match(value):
            raise ValueError("a channel name is 1-40 lowercase letters, digits, '-' or '_'")
        return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value[:60]!r} is not an environment variable name (the secret itself never goes here)")
    return value


class LabChannel(_Channel):
    type: Literal["lab"]


class WebhookChannel(_Channel):
    """POSTs `{"text": …, "handrail": {…}}`: Slack and Teams incoming webhooks show `text`."""

    type: Literal["webhook"]
    url_env: str

    @field_validator("url_env")
    @classmethod
    def _url_env(cls, value: str) -> str:
        return _env_name(value)


class SmtpChannel(_Channel):
    type: Literal["smtp"]
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "plain"] = "starttls"
    sender: str
    username: str = ""
    password_env: str = ""
    addresses: dict[str, str] = Field(default_factory=dict)  # policy user -> e-mail address

    @field_validator("password_env")
    @classmethod
    def _password_env(cls, value: str) -> str:
        return _env_name(value) if value else value

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not _ADDRESS.match(value):
            raise ValueError(f"{value[:60]!r} is not an e-mail address")
        return value

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: dict[str, str]) -> dict[str, str]:
        for user, address in value.items():
            if not _ADDRESS.match(address):
                raise ValueError(f"the address of {user} ({address[:60]!r}) is not an e-mail address")
        return value

    @model_validator(mode="after")
    def _login_has_password(self) -> "SmtpChannel":
        if self.username and not self.password_env:
            raise ValueError("a username needs password_env (the variable that holds the password)")
        return self


Channel = Annotated[Union[LabChannel, WebhookChannel, SmtpChannel], Field(discriminator="type")]


class NotifySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: list[Channel] = Field(default_factory=lambda: [LabChannel(name="lab", type="lab")])
    attempts: int = Field(default=3, ge=1, le=10)
    timeout: float = Field(default=5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _unique_names(self) -> "NotifySettings":
        names = [c.name for c in self.channels]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two channels are named {name!r}")
        return self

    def channel(self, name: str):
        return next((c for c in self.channels if c.name == name), None)


def notify_settings(policy: Any) -> NotifySettings:
    """`handrail policy check`'s hook and the worker's reader (raises NotifySettingsError)."""
    settings = getattr(policy, "settings", {}) or {}
    section = settings.get("notify", {}) if isinstance(settings, dict) else {}
    try:
        parsed = NotifySettings.model_validate(section)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        raise NotifySettingsError(f"settings.notify.{where}: {msg}." if where else f"settings.notify: {msg}.") from None
    users = set(getattr(policy, "users", {}) or {})
    for channel in parsed.channels:
        if isinstance(channel, SmtpChannel):
            unknown = sorted(set(channel.addresses) - users)
            if unknown:
                raise NotifySettingsError(f"settings.notify channel {channel.name} has an address for "
                                          f"unknown user {unknown[0]!r}.")
    return parsed
