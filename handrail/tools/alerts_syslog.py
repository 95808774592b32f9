"""SOC alerts to a SIEM over syslog: RFC 5424 messages with a CEF payload, over TCP with
RFC 6587 octet-counting framing, TLS when configured (RFC 5425's usual port 6514).

Syslog is fire-and-forget, so the SIEM cannot be asked what it received: the alerts sent
are also kept in a small local table (beside the idempotency journal) so `list_alerts`,
`get_alert` and `acknowledge` answer as the lab's do; an acknowledgement is sent to the
SIEM as its own CEF event. The alert's priority sets the syslog severity and the CEF
severity (P1 critical ... P4 notice).

An alert's title and body quote attacker-written text (a phishing subject, a feed entry).
Besides CEF's own escapes, every control and bidi character is sent as its escape
(`handrail.shown`): a NUL cuts the event in a C parser, an ESC reaches the analyst's
terminal through `tail`, and NEL or U+2028 start a new line in a line-based viewer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import sqlite3
import ssl
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from handrail.ops.tools_config import SyslogAlerts as SyslogConfig
from handrail.shown import lines, one_line
from handrail.tools.alerts import Alert, Priority
from handrail.tools.errors import Conflict, Invalid, NotFound, Unauthorized, Unavailable
from handrail.tools.journal import Journal, fingerprint

# priority -> (syslog severity, CEF severity 0-10)
SEVERITY: dict[str, tuple[int, int]] = {"P1": (2, 10), "P2": (3, 8), "P3": (4, 5), "P4": (5, 3)}
VENDOR, PRODUCT, VERSION = "Handrail", "Handrail", "0.1"
SD_ID = "handrail@32473"  # 32473 is the enterprise number RFC 5612 reserves for examples
MAX_FIELD = 1024


def _cef_header(text: str) -> str:
    return one_line(" ".join(str(text).split())).replace("\\", "\\\\").replace("|", "\\|")[:MAX_FIELD]


def _cef_value(text: str) -> str:
    text = lines(str(text)[:4 * MAX_FIELD]).replace("\\", "\\\\").replace("=", "\\=")
    return text.replace("\n", "\\n")  # `lines` made every line break (CR LF, CR) one LF


def _sd_value(text: str) -> str:
    return one_line(str(text)[:MAX_FIELD]).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _token(text: str, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, or the nil value."""
    cleaned = "".join(c for c in str(text) if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def cef(signature: str, name: str, priority: str, ext: dict[str, str]) -> str:
    severity = SEVERITY[priority][1]
    for n in range(1, 7):  # a custom string's label only where it has a value
        if ext.get(f"cs{n}") in (None, ""):
            ext.pop(f"cs{n}Label", None)
    extension = " ".join(f"{k}={_cef_value(v)}" for k, v in ext.items() if v not in (None, ""))
    return (f"CEF:0|{VENDOR}|{PRODUCT}|{VERSION}|{_cef_header(signature)}|{_cef_header(name)}|{severity}|"
            f"{extension}")


def rfc5424(cfg: SyslogConfig, priority: str, msgid: str, sd: dict[str, str], message: str,
            at: datetime | None = None) -> bytes:
    pri = cfg.facility * 8 + SEVERITY[priority][0]
    stamp = (at or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    host = _token(cfg.hostname or socket.gethostname(), 255)
    params = " ".join(f'{k}="{_sd_value(v)}"' for k, v in sd.items() if v not in (None, ""))
    structured = f"[{SD_ID} {params}]" if params else "-"
    head = f"<{pri}>1 {stamp} {host} {_token(cfg.app_name, 48)} - {_token(msgid, 32)} "
    if len(f"{head}{structured} ".encode()) > cfg.max_message // 2:
        structured = "-"  # the CEF payload carries the same fields
    head = f"{head}{structured} ".encode("utf-8", errors="replace")
    return head + _fit(message, cfg.max_message - len(head))


def _fit(message: str, limit: int) -> bytes:
    """The message in at most `limit` bytes of UTF-8, cut at a character and never inside an escape:
    a receiver that cuts a longer frame itself reads the rest as a message of its own, which the
    alert's text (a phishing subject, a feed entry) must never be able to write."""
    data = message.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return data
    text = data[:limit].decode("utf-8", errors="ignore")
    trailing = len(text) - len(text.rstrip("\\"))
    return (text[:-1] if trailing % 2 else text).encode()


class _SentAlerts:
    """The alerts this process sent, for list/get/acknowledge (syslog cannot be read back)."""

    def __init__(self, path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, raised_at TEXT, body TEXT)")

    def put(self, alert: Alert) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO alerts VALUES (?, ?, ?)",
                             (alert.id, alert.raised_at, alert.model_dump_json()))

    def get(self, alert_id: str) -> Alert | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM alerts WHERE id=?", (alert_id,)).fetchone()
        return Alert.model_validate_json(row[0]) if row else None

    def all(self) -> list[Alert]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM alerts ORDER BY raised_at, id").fetchall()
        return [Alert.model_validate_json(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SyslogAlerts:
    def __init__(self, cfg: SyslogConfig, journal: Journal) -> None:
        self.cfg = cfg
        self.journal = journal
        self.sent = _SentAlerts(journal.path.with_name("syslog-alerts.db"))

    def close(self) -> None:
        self.sent.close()

    async def _connect(self) -> asyncio.StreamWriter:
        where = f"{self.cfg.host}:{self.cfg.port}"
        context = None
        if self.cfg.tls:
            context = ssl.create_default_context(cafile=str(self.cfg.ca_file) if self.cfg.ca_file else None)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.cfg.host, self.cfg.port, ssl=context,
                                        server_hostname=self.cfg.host if context else None), self.cfg.timeout)
        except ssl.SSLCertVerificationError as exc:
            raise Unauthorized(f"The syslog server {where} presented a certificate that is not trusted: "
                               f"{exc.verify_message}.", code="tls_untrusted") from None
        except TimeoutError:
            raise Unavailable(f"The syslog server {where} did not accept a connection in time.",
                              code="timeout") from None
        except OSError as exc:
            raise Unavailable(f"The syslog server {where} is not answering ({exc.strerror or exc}).",
                              code="unreachable") from None
        return writer

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), self.cfg.timeout)
        except (OSError, TimeoutError, ssl.SSLError):
            pass

    async def probe(self) -> str:
        """Connect (and complete TLS) without sending anything: what `handrail tools check` reports."""
        await self._close(await self._connect())
        sent = len(await self.list_alerts())
        return (f"syslog {self.cfg.host}:{self.cfg.port} accepts connections{' over TLS' if self.cfg.tls else ''}; "
                f"{sent} alert(s) sent from here")

    async def send(self, frame: bytes) -> None:
        """One octet-counted frame over a fresh TCP (or TLS) connection."""
        where = f"{self.cfg.host}:{self.cfg.port}"
        writer = await self._connect()
        try:
            writer.write(str(len(frame)).encode() + b" " + frame)
            await asyncio.wait_for(writer.drain(), self.cfg.timeout)
        except (OSError, TimeoutError) as exc:
            raise Unavailable(f"Sending to the syslog server {where} failed ({type(exc).__name__}).",
                              code="unreachable") from None
        finally:
            await self._close(writer)

    def _frame(self, alert: Alert, signature: str, name: str, extra: dict[str, str] | None = None) -> bytes:
        ext = {"externalId": alert.id, "rt": str(int(datetime.fromisoformat(alert.raised_at).timestamp() * 1000)),
               "cs1Label": "source", "cs1": alert.source, "cs2Label": "run_id", "cs2": alert.run_id or "",
               "cs3Label": "tags", "cs3": ",".join(alert.tags), **(extra or {}),
               "msg": alert.body}  # last: a frame too long is cut there
        sd = {"id": alert.id, "priority": alert.priority, "run_id": alert.run_id or ""}
        return rfc5424(self.cfg, alert.priority, signature, sd, cef(signature, name, alert.priority, ext))

    # -- the Alerts protocol -----------------------------------------------------------------
    async def raise_alert(self, priority: Priority, title: str, body: str, *, source: str,
                          run_id: str | None = None, tags: Iterable[str] = (),
                          idempotency_key: str | None = None) -> Alert:
        if priority not in SEVERITY:
            raise Invalid(f"{priority!r} is not an alert priority (P1 to P4).", status=422)
        if not str(title).strip():
            raise Invalid("An alert needs a title.", status=422)
        tags = [str(t) for t in tags]

        # A keyed alert keeps its id when it is sent again (the worker died after sending, before the
        # journal said so): the SIEM then sees one externalId twice, not two alerts.
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest() if idempotency_key else uuid.uuid4().hex
        alert_id = f"ALR-{digest[:12].upper()}"

        async def act(resume: bool) -> Alert:
            alert = Alert(id=alert_id, priority=priority, title=title, body=body,
                          source=source, run_id=run_id, tags=tags,
                          raised_at=datetime.now(UTC).isoformat(timespec="milliseconds"))
            await self.send(self._frame(alert, "alert.raised", title))
            await asyncio.to_thread(self.sent.put, alert)
            return alert

        fp = fingerprint("alert", priority, title, body, source, run_id, tags)
        return await self.journal.run("alerts", idempotency_key, fp, act,
                                      dump=lambda a: json.loads(a.model_dump_json()), load=Alert.model_validate)

    async def list_alerts(self) -> list[Alert]:
        return await asyncio.to_thread(self.sent.all)

    async def get_alert(self, alert_id: str) -> Alert:
        alert = await asyncio.to_thread(self.sent.get, str(alert_id))
        if alert is None:
            raise NotFound(f"No alert {alert_id} was sent from here.", status=404)
        return alert

    async def acknowledge(self, alert_id: str, by: str, *, idempotency_key: str | None = None) -> Alert:
        async def act(resume: bool) -> Alert:
            alert = await self.get_alert(alert_id)
            if alert.acknowledged:
                if resume and alert.acknowledged_by == by:
                    return alert
                raise Conflict(f"Alert {alert_id} is already acknowledged by {alert.acknowledged_by}.", status=409)
            acked = alert.model_copy(update={"acknowledged": True, "acknowledged_by": by,
                                             "acknowledged_at": datetime.now(UTC).isoformat(timespec="seconds")})
            await self.send(self._frame(acked, "alert.acknowledged", f"Acknowledged: {alert.title}",
                                        {"suser": by}))
            await asyncio.to_thread(self.sent.put, acked)
            return acked

        return await self.journal.run("alerts", idempotency_key, fingerprint("ack", alert_id, by), act,
                                      dump=lambda a: json.loads(a.model_dump_json()), load=Alert.model_validate)
