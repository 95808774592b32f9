"""The phishing-report mailbox over IMAP (any server: Dovecot, Exchange, Gmail...).

A message's id is ``UIDVALIDITY.UID`` in the configured folder: a UID alone names another
message once the folder is recreated (the server then starts a new UIDVALIDITY and counts
UIDs from 1 again), and a rollback that marks "message 42" unprocessed must never touch
a stranger's. An id from an earlier generation of the folder is NotFound; a bare UID (ids
written before, or typed by a person) is read in the folder's current generation. "Processed" is a keyword flag
(`$HandrailProcessed` by default) so messages stay where the SOC expects them and a
mistaken mark is undone by removing the flag. Raw bytes are fetched with BODY.PEEK so
reading evidence never marks it \\Seen. Each call opens its own connection in a thread
(imaplib blocks), logs in with the password from the environment and logs out again.
"""

from __future__ import annotations

import asyncio
import email.policy
import imaplib
import re
import socket
import ssl
import time
from datetime import UTC, datetime
from email.parser import BytesHeaderParser

from imap_tools import AND, NOT, H, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import MailboxLoginError, UnexpectedCommandStatusError
from imap_tools.utils import encode_folder

from handrail.ops.tools_config import ImapMailbox as ImapConfig
from handrail.tools.errors import Conflict, Invalid, NotFound, ToolError, Unauthorized, Unavailable
from handrail.tools.journal import Journal, fingerprint
from handrail.tools.mailbox import Delivery, MessageStatus, MessageSummary

_ID = re.compile(r"^(?:([1-9][0-9]{0,9})\.)?([1-9][0-9]{0,9})$")  # [UIDVALIDITY.]UID
MAX_MESSAGE = 50 * 1024 * 1024


def _uid(msg_id: str) -> str:
    """The UID part of a message id (``UIDVALIDITY.UID``)."""
    return msg_id.rpartition(".")[2]


def _header(raw_headers: bytes, name: str) -> str:
    msg = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw_headers)
    return " ".join(str(msg.get(name, "")).split())


class ImapMailbox:
    def __init__(self, cfg: ImapConfig, journal: Journal) -> None:
        self.cfg = cfg
        self.journal = journal

    # -- connection ------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.cfg.ca_file) if self.cfg.ca_file else None)
        return ctx

    def _open(self):
        c = self.cfg
        if c.security == "tls":
            box = MailBox(c.host, c.port, timeout=c.timeout, ssl_context=self._ssl_context())
        elif c.security == "starttls":
            box = MailBoxStartTls(c.host, c.port, timeout=c.timeout, ssl_context=self._ssl_context())
        else:
            box = MailBoxUnencrypted(c.host, c.port, timeout=c.timeout)
        try:
            return self._login_and_select(box)
        except BaseException:
            try:  # a refused login or folder must not leave the connection open
                box.client.shutdown()
            except Exception:
                pass
            raise

    def _login_and_select(self, box):
        c = self.cfg
        try:
            if c.auth == "xoauth2":  # the environment variable then holds an OAuth 2 access token
                box.xoauth2(c.username, c.password, initial_folder=None)
            elif all(v.isascii() and v.isprintable() for v in (c.username, c.password)):
                box.login(c.username, c.password, initial_folder=None)
            else:
                # LOGIN sends a quoted ASCII string: imaplib cannot encode a UTF-8 password, and a CR or LF
                # in one would end the command line. SASL PLAIN carries UTF-8 in base64 (RFC 4616).
                secret = f"\0{c.username}\0{c.password}".encode()
                box.client.authenticate("PLAIN", lambda _challenge: secret)
                box.client.state = "AUTH"
        except imaplib.IMAP4.abort:
            raise
        except (MailboxLoginError, imaplib.IMAP4.error) as exc:  # AUTHENTICATE's refusals are IMAP4.error
            result = getattr(exc, "command_result", None) or ("NO", [str(exc).encode()])
            text = b" ".join(d for d in result[1] or () if isinstance(d, bytes)).upper()
            if text.startswith(b"[UNAVAILABLE]"):  # RFC 5530: the server's authentication is down for now
                raise Unavailable(f"The IMAP server {c.host} cannot check logins right now (UNAVAILABLE).",
                                  status=503, code="auth_unavailable") from None
            raise Unauthorized(f"The IMAP server {c.host} refused the login of {c.username}.", status=401) from None
        typ, _ = box.client.select(encode_folder(c.folder))  # quoted, modified UTF-7 (RFC 3501 5.1.3)
        if typ != "OK":
            raise NotFound(f"The IMAP folder {c.folder!r} does not exist.", status=404)
        validity = (box.client.untagged_responses.get("UIDVALIDITY") or [b""])[-1]
        if not (isinstance(validity, bytes) and validity.isdigit() and int(validity) > 0):
            raise ToolError(f"The IMAP server {c.host} gave the folder {c.folder!r} no UIDVALIDITY.",
                            code="imap_refused")
        box.uidvalidity = validity.decode()  # the folder's generation, for this connection's ids
        return box

    async def _call(self, what: str, fn):
        """Run `fn(box)` on a fresh logged-in connection in a thread; IMAP and socket errors become ToolErrors."""
        def work():
            box = self._open()
            try:
                return fn(box)
            finally:
                try:
                    box.logout()
                except Exception:  # the answer is what matters; a failed LOGOUT changes nothing
                    pass

        where = f"{self.cfg.host}:{self.cfg.port}"
        try:
            return await asyncio.to_thread(work)
        except ToolError:
            raise
        except ssl.SSLCertVerificationError as exc:
            raise Unauthorized(f"The IMAP server {where} presented a certificate that is not trusted: "
                               f"{exc.verify_message}.", code="tls_untrusted") from None
        except (TimeoutError, socket.timeout):
            raise Unavailable(f"The IMAP server {where} timed out while {what}.", code="timeout") from None
        except (OSError, imaplib.IMAP4.abort, EOFError) as exc:
            raise Unavailable(f"The IMAP server {where} is not answering ({type(exc).__name__}) while {what}.",
                              code="unreachable") from None
        except (ValueError, TypeError, UnicodeError) as exc:  # hostile ids or headers the library rejects
            raise Invalid(f"The IMAP request while {what} was refused locally: {exc}.", status=422) from None
        except (UnexpectedCommandStatusError, imaplib.IMAP4.error) as exc:
            text = " ".join(str(exc).split())[:200]
            raise ToolError(f"The IMAP server {where} refused {what}: {text}.", code="imap_refused") from None

    # -- helpers in the thread ----------------------------------------------------------------
    def _summaries(self, box, uids: list[str]) -> list[MessageSummary]:
        if not uids:
            return []
        typ, data = box.client.uid("FETCH", ",".join(uids), "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER])")
        if typ != "OK":
            raise ToolError(f"The IMAP server refused to fetch headers: {data!r:.100}.", code="imap_refused")
        records: list[list[bytes]] = []  # [meta before and after the literal, header literal]
        for item in data or ():
            if isinstance(item, tuple):
                records.append([item[0], item[1] or b""])
            elif isinstance(item, bytes) and records:
                records[-1][0] += b" " + item  # servers may send FLAGS after the literal
        out = []
        for meta_bytes, headers in records:
            meta = meta_bytes.decode(errors="replace")
            uid = re.search(r"UID (\d+)", meta)
            if not uid:
                continue
            flags = re.search(r"FLAGS \(([^)]*)\)", meta)
            size = re.search(r"RFC822\.SIZE (\d+)", meta)
            internal = imaplib.Internaldate2tuple(meta_bytes)  # local time, as imaplib gives it
            received = datetime.fromtimestamp(time.mktime(internal), UTC).isoformat() if internal else ""
            processed = self.cfg.processed_flag.lower() in (flags.group(1).lower().split() if flags else [])
            out.append(MessageSummary(
                id=f"{box.uidvalidity}.{uid.group(1)}", message_id=_header(headers, "Message-ID"),
                subject=_header(headers, "Subject"),
                sender=_header(headers, "From"), received_at=received,
                status="processed" if processed else "unprocessed", size=int(size.group(1)) if size else 0))
        return sorted(out, key=lambda m: int(_uid(m.id)))

    def _one(self, box, msg_id: str) -> MessageSummary:
        found = _ID.match(msg_id or "")
        if not found:
            raise NotFound(f"There is no message {msg_id!r} in the mailbox (ids are UIDVALIDITY.UID).", status=404)
        validity, uid = found.groups()
        if validity is not None and validity != box.uidvalidity:
            raise NotFound(f"Message {msg_id} was in an earlier generation of {self.cfg.folder} (its UIDVALIDITY "
                           f"is now {box.uidvalidity}): that message is gone, whatever has its UID now.", status=404)
        summaries = self._summaries(box, [uid])
        if not summaries or _uid(summaries[0].id) != uid:
            raise NotFound(f"There is no message {msg_id} in {self.cfg.folder}.", status=404)
        return summaries[0]

    def _expunge_one(self, box, uid: str) -> None:
        """Delete exactly this message. A plain EXPUNGE also removes every other message an analyst's
        client has marked \\Deleted, so it is only used when there is none; UID EXPUNGE (UIDPLUS)
        removes this one alone."""
        typ, data = box.client.capability()
        uidplus = typ == "OK" and b"UIDPLUS" in b" ".join(d for d in data or () if isinstance(d, bytes)).upper().split()
        if not uidplus:
            others = [u for u in box.uids(AND(deleted=True)) if u != uid]
            if others:
                raise Conflict(f"Message {uid} was not deleted: {self.cfg.folder} holds {len(others)} other message(s) "
                               f"marked deleted, which EXPUNGE would remove too (the server lacks UIDPLUS).",
                               status=409)
        typ, data = box.client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
        if typ != "OK":
            raise ToolError(f"The IMAP server refused to mark message {uid} deleted: {data!r:.100}.",
                            code="imap_refused")
        typ, data = box.client.uid("EXPUNGE", uid) if uidplus else box.client.expunge()
        if typ != "OK":
            raise ToolError(f"The IMAP server refused to expunge message {uid}: {data!r:.100}.", code="imap_refused")

    # -- the Mailbox protocol ----------------------------------------------------------------
    async def list_messages(self, status: MessageStatus | None = None) -> list[MessageSummary]:
        if status not in (None, "processed", "unprocessed"):
            raise Invalid(f"{status!r} is not a message status.", status=422)
        flag = self.cfg.processed_flag

        def fn(box):
            criteria = {"processed": AND(keyword=flag), "unprocessed": NOT(AND(keyword=flag))}.get(status, "ALL")
            return self._summaries(box, list(box.uids(criteria)))

        return await self._call("listing messages", fn)

    async def get_message(self, msg_id: str) -> MessageSummary:
        return await self._call(f"reading message {msg_id}", lambda box: self._one(box, str(msg_id)))

    async def fetch_raw(self, msg_id: str) -> bytes:
        def fn(box):
            summary = self._one(box, str(msg_id))
            if summary.size > MAX_MESSAGE:
                raise Invalid(f"Message {msg_id} is {summary.size} bytes, over the {MAX_MESSAGE}-byte limit.")
            typ, data = box.client.uid("FETCH", _uid(summary.id), "(BODY.PEEK[])")
            raw = next((item[1] for item in data or () if isinstance(item, tuple)), None)
            if typ != "OK" or raw is None:
                raise NotFound(f"There is no message {msg_id} in {self.cfg.folder}.", status=404)
            return raw

        return await self._call(f"fetching message {msg_id}", fn)

    async def deliver(self, raw: bytes, *, idempotency_key: str | None = None) -> Delivery:
        """Append a message (tests and demos); a message whose Message-ID is already there is not added twice."""
        if not raw or not raw.strip():
            raise Invalid("The message is empty.", status=422)
        message_id = _header(raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0], "Message-ID")

        def fn(box):
            def find() -> str | None:
                if not message_id:
                    return None
                uids = box.uids(AND(header=H("Message-ID", message_id)))
                return f"{box.uidvalidity}.{uids[-1]}" if uids else None

            existing = find()
            if existing:
                return Delivery(id=existing, message_id=message_id, created=False)
            box.append(raw, self.cfg.folder, flag_set=())
            uid = find()
            if uid is None:
                uids = box.uids("ALL")
                uid = f"{box.uidvalidity}.{uids[-1]}" if uids else ""
            return Delivery(id=uid, message_id=message_id, created=True)

        return await self._call("delivering a message", fn)

    async def delete_message(self, msg_id: str, *, idempotency_key: str | None = None) -> None:
        async def act(resume: bool) -> None:
            def fn(box):
                try:
                    current = self._one(box, str(msg_id))
                except NotFound:
                    if resume:
                        return
                    raise
                self._expunge_one(box, _uid(current.id))

            await self._call(f"deleting message {msg_id}", fn)

        await self.journal.run("mailbox", idempotency_key, fingerprint("delete", msg_id), act)

    async def _set_processed(self, msg_id: str, value: bool, idempotency_key: str | None) -> MessageSummary:
        want = "processed" if value else "unprocessed"

        async def act(resume: bool) -> MessageSummary:
            def fn(box):
                current = self._one(box, str(msg_id))
                if current.status == want:
                    if resume:
                        return current
                    raise Conflict(f"Message {msg_id} is already {want}.", status=409)
                box.flag([_uid(current.id)], [self.cfg.processed_flag], value)
                return self._one(box, current.id)

            return await self._call(f"marking message {msg_id} {want}", fn)

        return await self.journal.run("mailbox", idempotency_key, fingerprint(want, msg_id), act,
                                      dump=lambda m: m.model_dump(), load=MessageSummary.model_validate)

    async def mark_processed(self, msg_id: str, *, idempotency_key: str | None = None) -> MessageSummary:
        return await self._set_processed(msg_id, True, idempotency_key)

    async def mark_unprocessed(self, msg_id: str, *, idempotency_key: str | None = None) -> MessageSummary:
        return await self._set_processed(msg_id, False, idempotency_key)

