"""The email channel: a small pool of reused SMTP connections (aiosmtplib) and the
sender the delivery worker calls.

Connections are opened on demand, up to ``smtp_connections``, kept open between
messages and replaced when the server drops them. A message is sent with implicit
TLS or STARTTLS and authentication as the settings say. A refused recipient or a 5xx
reply is a permanent failure; anything else (the server down, a 4xx) is retried by
the delivery worker with backoff. A crash between the server's 250 and the worker's
record can repeat one message: the Message-ID, derived from the dedupe key, is the
same on the repeat.
"""

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib

from notifier.settings import Settings
from servicekit.deliveries import Delivery, PermanentFailure


def build_message(settings: Settings, payload: Mapping[str, Any], dedupe_key: str) -> EmailMessage:
    """The MIME message (text with an HTML alternative) of an email delivery's payload."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = payload["message_id"]
    for name, value in payload.get("headers", {}).items():
        message[name] = value
    message["Auto-Submitted"] = "auto-generated"
    message["X-Klaxon-Delivery"] = dedupe_key
    message.set_content(payload["text"])
    message.add_alternative(payload["html"], subtype="html")
    return message


class SmtpPool:
    """Reusable SMTP connections to the configured server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(settings.smtp_connections)
        self._tls: ssl.SSLContext | None = None
        if settings.smtp_tls or settings.smtp_starttls:
            self._tls = ssl.create_default_context(cafile=settings.smtp_ca_file or None)

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password or None,
            use_tls=s.smtp_tls,
            start_tls=s.smtp_starttls,
            tls_context=self._tls,
            timeout=s.smtp_timeout_s,
        )

    async def send(self, message: EmailMessage) -> str:
        """Send one message on a pooled connection; returns the server's reply."""
        async with self._slots:
            client = self._idle.pop() if self._idle else None
            try:
                if client is None or not client.is_connected:
                    client = await self._connect()
                try:
                    _, reply = await client.send_message(message)
                except aiosmtplib.SMTPServerDisconnected:
                    # A pooled connection the server had closed: once more, on a fresh one.
                    client.close()
                    client = await self._connect()
                    _, reply = await client.send_message(message)
            except BaseException:
                if client is not None:
                    client.close()
                raise
            self._idle.append(client)
            return reply

    async def _connect(self) -> aiosmtplib.SMTP:
        client = self._client()
        await client.connect()
        return client

    async def close(self) -> None:
        """Close every idle connection politely."""
        idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(Exception):
                await client.quit()


@contextlib.asynccontextmanager
async def smtp_resource(settings: Any) -> AsyncIterator[SmtpPool]:
    """The SMTP pool as a runtime resource: open for the life of the service."""
    pool = SmtpPool(settings)
    try:
        yield pool
    finally:
        await pool.close()


async def send_email(pool: SmtpPool, settings: Settings, item: Delivery) -> dict[str, Any]:
    """Send an email delivery; a refusal that retrying cannot fix is a `PermanentFailure`."""
    message = build_message(settings, item.payload, item.dedupe_key)
    try:
        reply = await pool.send(message)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise PermanentFailure(f"recipient refused: {exc}") from exc
    except aiosmtplib.SMTPResponseException as exc:
        if 500 <= exc.code < 600:
            raise PermanentFailure(f"{exc.code} {exc.message}") from exc
        raise
    return {"message_id": item.payload["message_id"], "reply": reply}
