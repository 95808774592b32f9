"""`handrail lab list mailbox|dlp|iam|nac`: the inputs the runbooks take, so nobody guesses ids.

Reads the lab's whole-state document (the lab is the simulated estate; a deployment's real
tools list their own records) and picks the fields a person needs to start a run.
"""

from __future__ import annotations

from typing import Any

SOURCES = ("mailbox", "dlp", "iam", "nac")

START = {
    "mailbox": "handrail run phishing --message-id {id}",
    "dlp": "handrail run exfiltration --alert-id {id}",
    "iam": "handrail run privilege-guard --event-id {id}",
    "nac": "handrail run rogue-device --mac {id}",
}


def _rows(items: dict[str, dict], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{f: item.get(f) for f in fields} for _, item in sorted(items.items())]


def listing(state: dict[str, Any], source: str, everything: bool = False) -> dict[str, Any]:
    """The records of one source, newest last, with the command that starts a run on one."""
    tools = state.get("tools", {})
    if source == "mailbox":
        rows = [{"id": m.get("id"), "message_id": m.get("message_id"), "from": m.get("from"),
                 "subject": m.get("subject"), "received_at": m.get("received_at"), "status": m.get("status")}
                for _, m in sorted(tools.get("mailbox", {}).get("messages", {}).items())]
    elif source == "dlp":
        rows = _rows(tools.get("dlp", {}).get("alerts", {}),
                     ("id", "user", "host", "channel", "detector", "severity", "status"))
    elif source == "iam":
        rows = _rows(tools.get("iam", {}).get("events", {}),
                     ("id", "kind", "principal", "group", "actor", "change_ticket", "status"))
    else:
        known = {d.get("mac", "").lower() for d in tools.get("cmdb", {}).get("devices", {}).values()}
        devices = tools.get("nac", {}).get("devices", {})
        rows = [{"id": d.get("mac"), "ip": d.get("ip"), "vendor": d.get("vendor"), "type": d.get("type"),
                 "hostname": d.get("hostname"), "network": d.get("network"), "connected": d.get("connected"),
                 "in_cmdb": d.get("mac", "").lower() in known}
                for _, d in sorted(devices.items())]
        if not everything:
            rows = [r for r in rows if not r["in_cmdb"]]
    return {"source": source, "count": len(rows), "start_with": START[source], "items": rows}


def notification_listing(raw: dict[str, Any]) -> dict[str, Any]:
    """What the lab's notification sink holds (`/_lab/notifications`): who was told what, oldest first."""
    rows = [{"id": n.get("id"), "event": n.get("event"), "run_id": n.get("run_id"), "step_id": n.get("step_id"),
             "channel": n.get("channel"), "recipients": ", ".join(n.get("recipients") or []),
             "command": n.get("approve_command") or n.get("outcome") or "", "received_at": n.get("received_at")}
            for n in raw.get("notifications", [])]
    return {"source": "notifications", "count": len(rows), "items": rows,
            "full": raw.get("notifications", [])}
