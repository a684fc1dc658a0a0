"""A real SMTP server (aiosmtpd) on a local port that records what it accepts and can be
stopped and started again on the same port."""

import asyncio
import email
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Received:
    """One accepted message."""

    envelope_to: list[str]
    message: EmailMessage

    @property
    def delivery(self) -> str:
        """The Klaxon delivery (dedupe key) it was sent for."""
        return str(self.message["X-Klaxon-Delivery"])

    def text(self) -> str:
        """The plain-text part."""
        part = self.message.get_body(("plain",))
        return part.get_content() if part else ""

    def html(self) -> str:
        """The HTML part."""
        part = self.message.get_body(("html",))
        return part.get_content() if part else ""


@dataclass
class SmtpServer:
    """The running server and what it received."""

    port: int
    received: list[Received] = field(default_factory=list)
    controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(list(envelope.rcpt_tos), message))
        return "250 Message accepted"

    def start(self) -> None:
        """Listen (again) on the port."""
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        """Stop listening; connections are refused until `start`."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Received]:
        """Messages sent to `address`."""
        return [r for r in self.received if address in r.envelope_to]

    def for_delivery(self, prefix: str) -> list[Received]:
        """Messages whose delivery key starts with `prefix`."""
        return [r for r in self.received if r.delivery.startswith(prefix)]

    async def wait_for(
        self, count: int, *, timeout_s: float = 10.0, address: str | None = None
    ) -> None:
        """Wait until at least `count` messages (to `address`) arrived."""
        async with asyncio.timeout(timeout_s):
            while len(self.to(address) if address else self.received) < count:
                await asyncio.sleep(0.02)
