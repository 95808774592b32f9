"""Tool clients: one `Protocol` per security-tool category and an httpx implementation of
each for the lab's REST contract. A deployment swaps in clients for its own vendors.

`ToolClients` bundles one client per tool over a single `httpx.AsyncClient`:

    async with ToolClients.from_settings(settings) as tools:
        await tools.firewall.egress_add("203.0.113.9", "phish C2", idempotency_key=key)

Tool clients know nothing of Temporal; errors are `handrail.tools.errors.ToolError`s.
`HANDRAIL_TOOLS` (handrail/ops/tools_config.py) swaps in real backends for some tools:
IMAP, RPZ, nftables, syslog/CEF and TAXII 2.1 (handrail/tools/backends.py).
"""

from __future__ import annotations

from typing import Any, Self

import httpx
from pydantic import Field

from handrail.ops.config import Settings
from handrail.ops.credentials import check_token
from handrail.tools.alerts import Alerts, LabAlerts
from handrail.tools.cases import Cases, LabCases
from handrail.tools.cmdb import Cmdb, LabCmdb
from handrail.tools.dlp import Dlp, LabDlp
from handrail.tools.dns import Dns, LabDns
from handrail.tools.edr import Edr, LabEdr
from handrail.tools.errors import Conflict, Invalid, NotFound, ToolError, Unauthorized, Unavailable
from handrail.tools.firewall import Firewall, LabFirewall
from handrail.tools.http import DEFAULT_TIMEOUT, LabHTTP, ToolModel
from handrail.tools.iam import Iam, LabIam
from handrail.tools.intel import Intel, LabIntel
from handrail.tools.ips import Ips, LabIps
from handrail.tools.keepalive import KeepAliveTransport
from handrail.tools.mailbox import LabMailbox, Mailbox
from handrail.tools.nac import LabNac, Nac
from handrail.tools.proxy import LabProxy, Proxy
from handrail.tools.siem import LabSiem, Siem
from handrail.tools.takedown import LabTakedown, Takedown
from handrail.tools.training import LabTraining, Training

__all__ = [
    "Conflict",
    "Invalid",
    "LabCall",
    "LabFault",
    "LabState",
    "NotFound",
    "ToolClients",
    "ToolError",
    "Unauthorized",
    "Unavailable",
]


class LabState(ToolModel):
    hash: str
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    tools: dict[str, Any] = Field(default_factory=dict)


class LabCall(ToolModel):
    method: str
    path: str
    idempotency_key: str | None = None
    status: int
    at: str


class LabFault(ToolModel):
    id: int
    route: str
    method: str | None = None
    error_rate: float = 0.0
    error_status: int = 503
    latency_ms: int = 0
    status: int | None = None
    seed: int = 0
    count: int | None = None
    after_apply: bool = False
    skip: int = 0
    hits: int = 0


class ToolClients:
    firewall: Firewall
    alerts: Alerts
    mailbox: Mailbox
    dns: Dns
    edr: Edr
    siem: Siem
    ips: Ips
    proxy: Proxy
    dlp: Dlp
    cmdb: Cmdb
    iam: Iam
    nac: Nac
    intel: Intel
    cases: Cases
    training: Training
    takedown: Takedown

    def __init__(self, client: httpx.AsyncClient, *, token: str = "", admin_token: str = "") -> None:
        self._client = client
        self.http = LabHTTP(client, secret=token or admin_token)
        # the lab's own /_lab routes take the admin credential only, never the tool token
        self._admin = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.firewall = LabFirewall(self.http)
        self.alerts = LabAlerts(self.http)
        self.mailbox = LabMailbox(self.http)
        self.dns = LabDns(self.http)
        self.edr = LabEdr(self.http)
        self.siem = LabSiem(self.http)
        self.ips = LabIps(self.http)
        self.proxy = LabProxy(self.http)
        self.dlp = LabDlp(self.http)
        self.cmdb = LabCmdb(self.http)
        self.iam = LabIam(self.http)
        self.nac = LabNac(self.http)
        self.intel = LabIntel(self.http)
        self.cases = LabCases(self.http)
        self.training = LabTraining(self.http)
        self.takedown = LabTakedown(self.http)

    @classmethod
    def from_settings(cls, settings: Settings,
                      transport: httpx.AsyncBaseTransport | None = None,
                      *, timeout: float = DEFAULT_TIMEOUT) -> ToolClients:
        check_token(settings.lab_token, settings.lab_url, "HANDRAIL_LAB_TOKEN")
        client = httpx.AsyncClient(
            base_url=settings.lab_url,
            headers={"Authorization": f"Bearer {settings.lab_token}"},
            timeout=timeout,
            # Kept-alive connections without httpcore's per-request walk over its whole pool
            # (handrail.tools.keepalive says why); a test's transport replaces it.
            transport=transport or KeepAliveTransport(),
        )
        tools = cls(client, token=settings.lab_token, admin_token=settings.lab_admin_token)
        tools.use_backends(settings)
        return tools

    def use_backends(self, settings: Settings) -> None:
        """Swap in the real backends that HANDRAIL_TOOLS chooses (every other tool stays the lab)."""
        from handrail.tools.backends import build_backends

        chosen, closers = build_backends(settings, {"intel": self.intel})
        for name, client in chosen.items():
            setattr(self, name, client)
        self._closers = closers

    @classmethod
    def for_admin(cls, settings: Settings, transport: httpx.AsyncBaseTransport | None = None,
                  *, timeout: float = DEFAULT_TIMEOUT) -> ToolClients:
        """Clients for `handrail lab …`: the admin credential only, so only the `lab_*` helpers work.

        The CLI never reads the tool token (HANDRAIL_LAB_TOKEN): tools are reached through
        the workers' activities, and the lab refuses the admin token on every tool route.
        """
        check_token(settings.lab_admin_token, settings.lab_url, "HANDRAIL_LAB_ADMIN_TOKEN")
        client = httpx.AsyncClient(base_url=settings.lab_url, timeout=timeout, transport=transport)
        return cls(client, admin_token=settings.lab_admin_token)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    async def aclose(self) -> None:
        for resource in getattr(self, "_closers", ()):
            if hasattr(resource, "aclose"):
                await resource.aclose()
            else:
                resource.close()
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- lab helpers (tests, the demo and `handrail lab`) ---------------------------------
    async def lab_state(self, *, counts_only: bool = False) -> LabState:
        params = {"counts_only": True} if counts_only else None
        return LabState.model_validate(await self.http.json("GET", "/_lab/state", params=params, headers=self._admin))

    async def lab_notifications(self, run_id: str | None = None) -> dict:
        """What the lab's notification sink recorded (handrail/notify): `{"notifications": [...]}`."""
        params = {"run_id": run_id} if run_id else None
        return await self.http.json("GET", "/_lab/notifications", params=params, headers=self._admin)

    async def lab_reset(self) -> str:
        """Reload the seed; returns the fresh estate's hash."""
        return (await self.http.json("POST", "/_lab/reset", headers=self._admin))["hash"]

    async def lab_calls(self, limit: int = 100) -> list[LabCall]:
        data = await self.http.json("GET", "/_lab/calls", params={"limit": limit}, headers=self._admin)
        return [LabCall.model_validate(c) for c in data["calls"]]

    async def lab_set_fault(self, route: str, *, method: str | None = None,
                            error_rate: float = 0.0, error_status: int = 503,
                            latency_ms: int = 0, status: int | None = None, seed: int = 0,
                            count: int | None = None, after_apply: bool = False,
                            skip: int = 0) -> LabFault:
        payload = {"route": route, "method": method, "error_rate": error_rate,
                   "error_status": error_status, "latency_ms": latency_ms, "status": status,
                   "seed": seed, "count": count, "after_apply": after_apply, "skip": skip}
        return LabFault.model_validate(await self.http.json("POST", "/_lab/faults", json=payload, headers=self._admin))

    async def lab_faults(self) -> list[LabFault]:
        data = await self.http.json("GET", "/_lab/faults", headers=self._admin)
        return [LabFault.model_validate(f) for f in data["faults"]]

    async def lab_clear_faults(self) -> int:
        return int((await self.http.json("DELETE", "/_lab/faults", headers=self._admin))["cleared"])
