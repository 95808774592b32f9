"""Mailbox: the phishing-report inbox (user-reported suspicious mail), raw RFC 5322 bytes.

Routes:
- `GET /mailbox/messages?status=unprocessed|processed` -> `{"messages": [{"id",
  "message_id", "subject", "from", "received_at", "status", "size", "sha256"}]}`.
- `GET /mailbox/messages/{id}` -> that summary; 404.
- `GET /mailbox/messages/{id}/raw` -> `message/rfc822` bytes exactly as received.
- `POST /mailbox/messages` (raw body, `Content-Type: message/rfc822`) -> 201 `{"id",
  "message_id", "created": true}`; the same bytes already in the mailbox -> 200 with the
  existing id and `"created": false` (a new message reusing a Message-ID is a new
  message); 422 if the body is empty or has no headers.
- `DELETE /mailbox/messages/{id}` -> `{"removed": id}` (inverse of delivery).
- `POST /mailbox/messages/{id}/processed` -> the summary; 409 if already processed.
- `POST /mailbox/messages/{id}/unprocessed` -> the summary; 409 if not processed.

Messages are stored as bytes and only their headers are parsed. Links in them are live
and malicious: the lab never fetches, resolves or opens anything from a message.
"""

from __future__ import annotations

import hashlib
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from lab.clock import iso, now_iso, seed_time
from lab.deps import LabRoute, StoreDep
from lab.errors import conflict, invalid, not_found

TOOL = "mailbox"
COLLECTIONS = ("messages",)
router = APIRouter(prefix="/mailbox", tags=["mailbox"], route_class=LabRoute)


def _header(msg, name: str) -> str:
    raw = msg.get(name)
    if raw is None:
        return ""
    try:
        return str(make_header(decode_header(str(raw)))).strip()
    except Exception:  # noqa: BLE001 - malformed encoded-words: keep the raw text
        return str(raw).strip()


def summarise(raw: bytes, msg_id: str, received_at: str) -> dict:
    msg = BytesHeaderParser().parsebytes(raw)
    digest = hashlib.sha256(raw).hexdigest()
    message_id = _header(msg, "Message-ID") or f"<{digest[:32]}@lab.handrail.invalid>"
    return {
        "id": msg_id, "message_id": message_id, "subject": _header(msg, "Subject"),
        "from": _header(msg, "From"), "received_at": received_at, "status": "unprocessed",
        "size": len(raw), "sha256": digest,
    }


def _msg_id(n: int) -> str:
    return f"MSG-{n:06d}"


def seed(world, store) -> dict:
    messages = {}
    for i, mail in enumerate(world.mails, start=1):
        store.put_blob(mail.raw)
        doc = summarise(mail.raw, _msg_id(i), seed_time(len(world.mails) - i + 1))
        try:
            date = parsedate_to_datetime(_header(BytesHeaderParser().parsebytes(mail.raw),
                                                 "Date"))
            doc["date"] = iso(date) if date.tzinfo else None
        except Exception:  # noqa: BLE001
            doc["date"] = None
        messages[doc["id"]] = doc
    store.set_counter("mailbox", len(messages))
    return {"messages": messages}


def _get(store, msg_id: str) -> dict:
    doc = store.get(TOOL, "messages", msg_id)
    if doc is None:
        raise not_found(f"There is no message {msg_id} in the mailbox.")
    return doc


@router.get("/messages")
async def list_messages(store: StoreDep, status: str | None = None) -> dict:
    if status not in (None, "unprocessed", "processed"):
        raise invalid("status must be 'unprocessed' or 'processed'.")
    docs = store.all(TOOL, "messages")
    return {"messages": [d for d in docs if status is None or d["status"] == status]}


@router.get("/messages/{msg_id}")
async def get_message(msg_id: str, store: StoreDep) -> dict:
    return _get(store, msg_id)


@router.get("/messages/{msg_id}/raw")
async def raw_message(msg_id: str, store: StoreDep) -> Response:
    doc = _get(store, msg_id)
    data = store.get_blob(doc["sha256"]) or b""
    return Response(content=data, media_type="message/rfc822")


@router.post("/messages", status_code=201)
async def deliver(request: Request, store: StoreDep):
    raw = await request.body()
    if not raw.strip() or not BytesHeaderParser().parsebytes(raw).keys():
        raise invalid("The request body must be a raw RFC 5322 message with headers.")
    doc = summarise(raw, "", now_iso())
    for existing in store.all(TOOL, "messages"):  # the same bytes, not merely the same Message-ID
        if existing["sha256"] == doc["sha256"]:
            return JSONResponse({"id": existing["id"], "message_id": existing["message_id"],
                                 "created": False}, status_code=200)
    with store.batch():
        doc["id"] = _msg_id(store.next_id("mailbox"))
        doc["date"] = None
        store.put_blob(raw)
        store.put(TOOL, "messages", doc["id"], doc)
    return {"id": doc["id"], "message_id": doc["message_id"], "created": True}


@router.delete("/messages/{msg_id}")
async def delete_message(msg_id: str, store: StoreDep) -> dict:
    doc = _get(store, msg_id)
    with store.batch():
        store.delete(TOOL, "messages", msg_id)
        if not any(d["sha256"] == doc["sha256"] for d in store.all(TOOL, "messages")):
            store.drop_blob(doc["sha256"])
    return {"removed": msg_id}


@router.post("/messages/{msg_id}/processed")
async def mark_processed(msg_id: str, store: StoreDep) -> dict:
    doc = _get(store, msg_id)
    if doc["status"] == "processed":
        raise conflict(f"Message {msg_id} is already processed.", "already_processed")
    doc["status"] = "processed"
    store.put(TOOL, "messages", msg_id, doc)
    return doc


@router.post("/messages/{msg_id}/unprocessed")
async def mark_unprocessed(msg_id: str, store: StoreDep) -> dict:
    doc = _get(store, msg_id)
    if doc["status"] != "processed":
        raise conflict(f"Message {msg_id} is not processed.", "not_processed")
    doc["status"] = "unprocessed"
    store.put(TOOL, "messages", msg_id, doc)
    return doc
