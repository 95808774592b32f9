"""The phishing-report mailbox: user-reported messages as raw RFC 5322 bytes.

The bytes are evidence. Nothing that reads them may fetch, resolve or open their links.
"""

from __future__ import annotations

from typing import Literal, Protocol

from handrail.tools.http import LabHTTP, ToolModel, seg

MessageStatus = Literal["unprocessed", "processed"]


class MessageSummary(ToolModel):
    id: str
    message_id: str
    subject: str = ""
    sender: str = ""
    received_at: str
    status: MessageStatus
    size: int
    sha256: str = ""

    @classmethod
    def from_lab(cls, data: dict) -> MessageSummary:
        return cls.model_validate({**data, "sender": data.get("from", "")})


class Delivery(ToolModel):
    id: str
    message_id: str
    created: bool


class Mailbox(Protocol):
    async def list_messages(self, status: MessageStatus | None = None) -> list[MessageSummary]: ...
    async def get_message(self, msg_id: str) -> MessageSummary: ...
    async def fetch_raw(self, msg_id: str) -> bytes: ...
    async def deliver(self, raw: bytes, *, idempotency_key: str | None = None) -> Delivery: ...
    async def delete_message(self, msg_id: str, *, idempotency_key: str | None = None) -> None: ...
    async def mark_processed(self, msg_id: str, *,
                             idempotency_key: str | None = None) -> MessageSummary: ...
    async def mark_unprocessed(self, msg_id: str, *,
                               idempotency_key: str | None = None) -> MessageSummary: ...


class LabMailbox:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def list_messages(self, status: MessageStatus | None = None) -> list[MessageSummary]:
        data = await self.http.json("GET", "/mailbox/messages", params={"status": status})
        return [MessageSummary.from_lab(m) for m in data["messages"]]

    async def get_message(self, msg_id: str) -> MessageSummary:
        return MessageSummary.from_lab(
            await self.http.json("GET", f"/mailbox/messages/{seg(msg_id)}"))

    async def fetch_raw(self, msg_id: str) -> bytes:
        resp = await self.http.request("GET", f"/mailbox/messages/{seg(msg_id)}/raw")
        return resp.content

    async def deliver(self, raw: bytes, *, idempotency_key: str | None = None) -> Delivery:
        data = await self.http.json("POST", "/mailbox/messages", content=raw,
                                    headers={"Content-Type": "message/rfc822"},
                                    idempotency_key=idempotency_key)
        return Delivery.model_validate(data)

    async def delete_message(self, msg_id: str, *, idempotency_key: str | None = None) -> None:
        await self.http.request("DELETE", f"/mailbox/messages/{seg(msg_id)}",
                                idempotency_key=idempotency_key)

    async def mark_processed(self, msg_id: str, *,
                             idempotency_key: str | None = None) -> MessageSummary:
        return MessageSummary.from_lab(await self.http.json(
            "POST", f"/mailbox/messages/{seg(msg_id)}/processed",
            idempotency_key=idempotency_key))

    async def mark_unprocessed(self, msg_id: str, *,
                               idempotency_key: str | None = None) -> MessageSummary:
        return MessageSummary.from_lab(await self.http.json(
            "POST", f"/mailbox/messages/{seg(msg_id)}/unprocessed",
            idempotency_key=idempotency_key))
