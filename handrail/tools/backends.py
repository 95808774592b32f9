"""Build the real backend each tool's configuration chooses (see handrail/ops/tools_config.py).

Imports are per backend so a deployment that keeps the lab never loads IMAP, DNS or TAXII
libraries. Each backend implements the same Protocol as the tool's lab client.
"""

from __future__ import annotations

from typing import Any

from handrail.ops.config import Settings
from handrail.ops.tools_config import ToolsConfig, load_tools_config
from handrail.tools.journal import Journal


def build_backends(settings: Settings, fallback: dict[str, Any],
                   cfg: ToolsConfig | None = None) -> tuple[dict[str, Any], list[Any]]:
    """The tool clients that replace the lab's, and the resources to close afterwards."""
    cfg = cfg or load_tools_config(settings.tools_path)
    chosen: dict[str, Any] = {}
    closers: list[Any] = []
    if all(b == "lab" for b in cfg.backends().values()):
        return chosen, closers
    journal = Journal((cfg.state_dir or settings.home) / "tools-journal.db")
    closers.append(journal)
    if cfg.dns.backend == "rpz":
        from handrail.tools.dns_rpz import RpzSinkhole
        chosen["dns"] = RpzSinkhole(cfg.dns, journal)
    if cfg.firewall.backend == "nftables":
        from handrail.tools.firewall_nft import NftFirewall
        chosen["firewall"] = NftFirewall(cfg.firewall, journal)
    if cfg.mailbox.backend == "imap":
        from handrail.tools.mailbox_imap import ImapMailbox
        chosen["mailbox"] = ImapMailbox(cfg.mailbox, journal)
    if cfg.alerts.backend == "syslog":
        from handrail.tools.alerts_syslog import SyslogAlerts
        chosen["alerts"] = SyslogAlerts(cfg.alerts, journal)
        closers.append(chosen["alerts"])
    if cfg.intel.backend == "taxii":
        from handrail.tools.intel_taxii import TaxiiIntel
        chosen["intel"] = TaxiiIntel(cfg.intel, fallback["intel"], journal)
        closers.append(chosen["intel"])
    return chosen, closers
