"""`handrail tools check`: connect to each tool with its configured backend and say what came back.

Every probe is a read (nothing changes): reachable (it answered at all), authenticated (it
accepted our credentials), and a short description of what it read, so a user can check
a HANDRAIL_TOOLS file before the first run depends on it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from handrail.ops.tools_config import TOOL_NAMES, ToolsConfig
from handrail.tools.errors import ToolError, Unauthorized, Unavailable


class ToolCheck(BaseModel):
    tool: str
    backend: str
    reachable: bool
    authenticated: bool
    read: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.reachable and self.authenticated and self.error is None


async def _read(name: str, client: Any) -> str:
    if name == "mailbox":
        messages = await client.list_messages()
        waiting = sum(m.status == "unprocessed" for m in messages)
        return f"{len(messages)} message(s), {waiting} unprocessed"
    if name == "dns":
        sinkholes = await client.list_sinkholes()
        where = ""
        cfg = getattr(client, "cfg", None)
        if cfg is not None and not cfg.zone_file.exists():
            where += f"; zone file {cfg.zone_file} not created yet (the first sinkhole writes it)"
        if cfg is not None and cfg.resolver:
            await client.resolve("handrail-check.invalid")  # the resolver answers (NXDOMAIN is an answer)
            where += f"; resolver {cfg.resolver} answers"
        return f"{len(sinkholes)} sinkholed domain(s){where}"
    if name == "firewall":
        return f"{len(await client.egress_list())} egress blocklist entr(y/ies)"
    if name == "alerts":
        if hasattr(client, "probe"):
            return await client.probe()
        return f"{len(await client.list_alerts())} alert(s)"
    if name == "intel":
        feeds = await client.list_feeds()
        return f"{len(feeds)} feed(s): " + ", ".join(f.name for f in feeds[:8]) + (" ..." if len(feeds) > 8 else "")
    raise ValueError(name)


async def check_tools(tools: Any, cfg: ToolsConfig, only: list[str] | None = None) -> list[ToolCheck]:
    results = []
    for name in TOOL_NAMES:
        if only and name not in only:
            continue
        backend = getattr(cfg, name).backend
        try:
            read = await _read(name, getattr(tools, name))
            results.append(ToolCheck(tool=name, backend=backend, reachable=True, authenticated=True, read=read))
        except Unavailable as exc:
            results.append(ToolCheck(tool=name, backend=backend, reachable=False, authenticated=False, error=str(exc)))
        except Unauthorized as exc:
            results.append(ToolCheck(tool=name, backend=backend, reachable=True, authenticated=False, error=str(exc)))
        except ToolError as exc:
            results.append(ToolCheck(tool=name, backend=backend, reachable=True, authenticated=True, error=str(exc)))
    return results
