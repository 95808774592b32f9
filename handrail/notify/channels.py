"""Sending one notice over one channel, with bounded retries and secret-free errors.

Each sender raises `ChannelFailed` with one sentence that never contains the secret (a
webhook URL carries its token, so neither the URL nor an exception text quoting it is
repeated). `send_with_retries` tries a few times with a short back-off, then gives up:
the caller audits `notify.failed` and the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import smtplib
import ssl
from collections.abc import Awaitable, Callable

import httpx

from handrail.notify.message import Notice, email_message, render_text, webhook_body
from handrail.notify.settings import LabChannel, NotifySettings, SmtpChannel, WebhookChannel


class ChannelFailed(Exception):
    """One sentence about why a channel did not take the notice (no secret in it)."""


async def send_with_retries(send: Callable[[], Awaitable[None]], attempts: int, pause: float = 0.5) -> None:
    last: ChannelFailed | None = None
    for attempt in range(attempts):
        try:
            await send()
            return
        except ChannelFailed as exc:
            last = exc
        if attempt + 1 < attempts:
            await asyncio.sleep(pause * 2 ** attempt)
    raise ChannelFailed(f"{last} (after {attempts} attempt(s))")


class _HideWebhookUrls(logging.Filter):
    """httpx logs every request's full URL at INFO; a webhook URL carries its token, so the
    request line keeps only scheme and host for the URLs registered here."""

    def __init__(self) -> None:
        super().__init__()
        self.secret: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret and isinstance(record.args, tuple):
            record.args = tuple(_redacted(a) if str(a) in self.secret else a for a in record.args)
        return True


def _redacted(url) -> str:
    parsed = httpx.URL(str(url))
    return f"{parsed.scheme}://{parsed.host}/…(redacted)"


_HIDE = _HideWebhookUrls()
logging.getLogger("httpx").addFilter(_HIDE)


def _secret(variable: str, what: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        raise ChannelFailed(f"the worker has no {what} (set {variable} in its environment)")
    return value


async def send_lab(http, notice: Notice, channel: LabChannel) -> None:
    """The lab's sink (`POST /notifications`), keyed so that a retry records once."""
    from handrail.tools.errors import ToolError

    record = {"channel": channel.name, "event": notice.event, "run_id": notice.run_id, "step_id": notice.step_id,
              "kind": notice.change.kind, "target": notice.change.target, "recipients": notice.approvers,
              "text": render_text(notice), **{k: v for k, v in webhook_body(notice)["handrail"].items()
                                             if k in ("approve_command", "deny_command", "show_command",
                                                      "deadline", "outcome", "why")}}
    try:
        await http.json("POST", "/notifications", json=record, idempotency_key=f"{notice.key}/{channel.name}")
    except ToolError as exc:
        raise ChannelFailed(f"the lab's notification sink refused it ({exc.status or 'no answer'})") from None


async def send_webhook(notice: Notice, channel: WebhookChannel, timeout: float) -> None:
    url = _secret(channel.url_env, "webhook URL")
    _HIDE.secret.add(str(httpx.URL(url)))
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            response = await client.post(url, json=webhook_body(notice))
    except httpx.HTTPError as exc:
        raise ChannelFailed(f"the webhook could not be reached ({type(exc).__name__})") from None
    if not 200 <= response.status_code < 300:
        raise ChannelFailed(f"the webhook answered HTTP {response.status_code}")


def _smtp_send(channel: SmtpChannel, password: str, messages: list, timeout: float) -> None:
    """Blocking: run in a thread (`asyncio.to_thread`)."""
    context = ssl.create_default_context()
    if channel.security == "tls":
        smtp = smtplib.SMTP_SSL(channel.host, channel.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(channel.host, channel.port, timeout=timeout)
    with smtp:
        if channel.security == "starttls":
            smtp.starttls(context=context)
        if channel.username:
            smtp.login(channel.username, password)
        for message in messages:
            smtp.send_message(message)


async def send_smtp(notice: Notice, channel: SmtpChannel, timeout: float) -> None:
    password = _secret(channel.password_env, "SMTP password") if channel.username else ""
    recipients = [u for u in notice.approvers if u in channel.addresses]
    if not recipients:
        raise ChannelFailed("no eligible approver has an address in this channel")
    messages = [email_message(notice, channel.sender, channel.addresses[u], u) for u in recipients]
    try:
        await asyncio.to_thread(_smtp_send, channel, password, messages, timeout)
    except smtplib.SMTPResponseException as exc:
        raise ChannelFailed(f"the SMTP server refused it ({exc.smtp_code})") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise ChannelFailed(f"the SMTP server could not take it ({type(exc).__name__})") from None


async def send(http, notice: Notice, channel, settings: NotifySettings) -> None:
    """One channel, retried `settings.attempts` times; raises ChannelFailed at the end."""
    if isinstance(channel, LabChannel):
        once = lambda: send_lab(http, notice, channel)  # noqa: E731
    elif isinstance(channel, WebhookChannel):
        once = lambda: send_webhook(notice, channel, settings.timeout)  # noqa: E731
    else:
        once = lambda: send_smtp(notice, channel, settings.timeout)  # noqa: E731
    await send_with_retries(once, settings.attempts)
