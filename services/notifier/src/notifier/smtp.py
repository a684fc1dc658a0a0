"""The email channel: a small pool of reused SMTP connections (aiosmtplib) and the
sender the delivery worker calls.

Connections are opened on demand, up to ``smtp_connections``, kept open between
messages and replaced when the server drops them. A message is sent with implicit
TLS or STARTTLS and authentication as the settings say. A refused recipient or a 5xx
reply is a permanent failure; anything else (the server down, a 4xx, a refused login:
the credentials are wrong, not the message) is retried by the delivery worker with
backoff, so what is queued while the password is wrong goes out once it is put right. A crash between the server's 250 and the worker's
record can repeat one message: the Message-ID, derived from the dedupe key, is the
same on the repeat.
"""

import asyncio
import base64
import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
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


@dataclass(frozen=True)
class RawMessage:
    """A message already serialized for the wire, with its envelope addresses."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


def _header(name: str, value: str) -> str:
    if value.isascii() and len(name) + len(value) < 900:
        return f"{name}: {value}\r\n"  # within the line limit: as it is, like `email` does
    folded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {folded}\r\n"


def _part(content_type: str, body: str) -> str:
    encoded = base64.encodebytes(body.encode()).decode("ascii").replace("\n", "\r\n")
    return (
        f'Content-Type: {content_type}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{encoded}"
    )


def raw_message(
    settings: Settings, payload: Mapping[str, Any], dedupe_key: str
) -> RawMessage | EmailMessage:
    """The message of an email delivery's payload, serialized directly (the `email`
    package's header parsing and refolding cost milliseconds a message); the
    `build_message` form for what that cannot carry (a non-ASCII address, a line break
    in a header value)."""
    headers = {
        "Subject": payload["subject"],
        "Message-ID": payload["message_id"],
        **payload.get("headers", {}),
        "X-Klaxon-Delivery": dedupe_key,
    }
    name, sender = parseaddr(settings.mail_from)
    to = payload["to"]
    plain = [to, sender, *headers]
    values = list(headers.values())
    if (
        not all(v.isascii() for v in plain)
        or any(ch in v for v in [*values, settings.mail_from, to] for ch in "\r\n")
        or not sender
    ):
        return build_message(settings, payload, dedupe_key)
    boundary = f"==============={uuid.uuid4().hex}=="
    head = [
        _header("From", formataddr((name, sender))),
        f"To: {to}\r\n",
        _header("Subject", headers.pop("Subject")),
        f"Date: {formatdate(localtime=False, usegmt=True)}\r\n",
        f"Message-ID: {headers.pop('Message-ID')}\r\n",
        *(_header(k, v) for k, v in headers.items() if k != "X-Klaxon-Delivery"),
        "Auto-Submitted: auto-generated\r\n",
        _header("X-Klaxon-Delivery", dedupe_key),
        "MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n',
    ]
    body = (
        f"--{boundary}\r\n{_part('text/plain', payload['text'])}"
        f"--{boundary}\r\n{_part('text/html', payload['html'])}"
        f"--{boundary}--\r\n"
    )
    return RawMessage(sender, (to,), ("".join(head) + body).encode("ascii"))


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

    async def send(self, message: EmailMessage | RawMessage) -> str:
        """Send one message on a pooled connection; returns the server's reply."""
        async with self._slots:
            client = self._idle.pop() if self._idle else None
            try:
                if client is None or not client.is_connected:
                    client = await self._connect()
                try:
                    reply = await _send(client, message)
                except aiosmtplib.SMTPServerDisconnected:
                    # A pooled connection the server had closed: once more, on a fresh one.
                    client.close()
                    client = await self._connect()
                    reply = await _send(client, message)
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


async def _send(client: aiosmtplib.SMTP, message: EmailMessage | RawMessage) -> str:
    if isinstance(message, RawMessage):
        _, reply = await client.sendmail(message.sender, message.recipients, message.data)
    else:
        _, reply = await client.send_message(message)
    return reply


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
    message = raw_message(settings, item.payload, item.dedupe_key)
    try:
        reply = await pool.send(message)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise PermanentFailure(f"recipient refused: {exc}") from exc
    except aiosmtplib.SMTPAuthenticationError:
        raise  # a 535 says the credentials are wrong, not this message: retried
    except aiosmtplib.SMTPResponseException as exc:
        if 500 <= exc.code < 600:
            raise PermanentFailure(f"{exc.code} {exc.message}") from exc
        raise
    return {"message_id": item.payload["message_id"], "reply": reply}
