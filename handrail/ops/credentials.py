"""Which credential may be used where: tool tokens live with the workers, admin with the lab's owner.

The lab (like a real tool estate) has two kinds of caller. Workers call tool routes with the
tool token (`HANDRAIL_LAB_TOKEN`); `handrail lab …` administration calls the lab's own
routes with a separate admin credential (`HANDRAIL_LAB_ADMIN_TOKEN`). The CLI never needs
the tool token: it talks to Temporal, and runbooks reach tools through activities.

The built-in development tokens are fine on a loopback address; anywhere else an empty or
default token is refused, so a deployment cannot go live with a credential everyone knows.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlparse

DEFAULT_LAB_TOKEN = "handrail-dev-token"
DEFAULT_LAB_ADMIN_TOKEN = "handrail-dev-admin-token"
_DEFAULTS = {DEFAULT_LAB_TOKEN, DEFAULT_LAB_ADMIN_TOKEN}


class CredentialError(ValueError):
    """A credential is unusable for where it would be used; one sentence saying what to set."""


def is_loopback(url_or_host: str) -> bool:
    host = urlparse(url_or_host).hostname if "://" in url_or_host else url_or_host
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(token: str, where: str, variable: str) -> str:
    """The token, if it may be used at `where` (a URL or host); else CredentialError."""
    if is_loopback(where):
        return token
    if not token.strip():
        raise CredentialError(f"{variable} is empty and {where} is not a loopback address; set a secret token.")
    if token in _DEFAULTS:
        raise CredentialError(
            f"{variable} is the built-in development token and {where} is not a loopback address; set a secret token.")
    return token


def check_lab_tokens(tool_token: str, admin_token: str, where: str) -> None:
    """Both lab credentials are usable at `where`, and they are not the same secret."""
    check_token(tool_token, where, "HANDRAIL_LAB_TOKEN")
    check_token(admin_token, where, "HANDRAIL_LAB_ADMIN_TOKEN")
    if tool_token == admin_token:
        raise CredentialError("HANDRAIL_LAB_TOKEN and HANDRAIL_LAB_ADMIN_TOKEN must differ: "
                              "a tool token may never administer the lab.")
