"""A real SMTP server (aiosmtpd) on a local port that records what it accepts.

It can be stopped and started again on the same port (a mail server down for a
while), made to answer every message with an error (``fail_with = "451 ..."``),
and offer STARTTLS with a certificate from a throwaway CA (trustme): a client
trusts it with `SmtpServer.client_tls_context` or the `SmtpServer.ca_pem` file.
With ``logins`` (user name to password) it requires AUTH, offered only after STARTTLS.
The fixtures ``smtp_server`` and ``tls_smtp_server`` (in ``tests/conftest.py``)
give a test a started one.
"""

import asyncio
import email
import ssl
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.harness import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One accepted message: the SMTP envelope and the parsed message."""

    mail_from: str
    envelope_to: list[str]
    message: EmailMessage
    tls: bool
    """True if it came over STARTTLS."""
    login: str | None = None
    """The user name the client authenticated as (None without AUTH)."""

    def header(self, name: str) -> str:
        """A header's value ("" if absent)."""
        return str(self.message.get(name, ""))

    def text(self) -> str:
        """The plain-text body."""
        part = self.message.get_body(("plain",))
        return str(part.get_content()) if part else ""

    def html(self) -> str:
        """The HTML body."""
        part = self.message.get_body(("html",))
        return str(part.get_content()) if part else ""


class SmtpServer:
    """A recording SMTP server on `port` (a free one by default)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        starttls: bool = False,
        require_starttls: bool = False,
        logins: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.host = HOST
        self.received: list[Received] = []
        self.fail_with: str | None = None
        """When set (e.g. ``"451 4.3.0 try again later"``), every message is answered with
        it and not recorded."""
        self.refused = 0
        """Messages answered with `fail_with`."""
        self.logins = dict(logins or {})
        self.failed_logins = 0
        """AUTH attempts refused for a wrong user name or password."""
        self._lock = threading.Lock()  # aiosmtpd answers in a thread of its own
        self._controller: Controller | None = None
        self._ca: trustme.CA | None = None
        self._server_tls: ssl.SSLContext | None = None
        self.require_starttls = require_starttls
        if starttls or require_starttls or logins:
            self._ca = trustme.CA()
            certificate = self._ca.issue_cert(HOST, "localhost")
            self._server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            certificate.configure_cert(self._server_tls)

    @property
    def running(self) -> bool:
        """True while it listens."""
        return self._controller is not None

    def start(self) -> None:
        """Listen (again, on the same port)."""
        if self._controller is not None:
            return
        kwargs: dict[str, Any] = {}
        if self._server_tls is not None:
            kwargs.update(tls_context=self._server_tls, require_starttls=self.require_starttls)
        if self.logins:
            kwargs.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=True
            )
        controller = Controller(self, hostname=self.host, port=self.port, **kwargs)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening; connections are refused until `start`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def client_tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (and nothing else)."""
        if self._ca is None:
            raise RuntimeError("this server was started without STARTTLS")
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context

    def ca_pem(self) -> Path:
        """The throwaway CA's certificate as a PEM file, for clients configured by path."""
        if self._ca is None:
            raise RuntimeError("this server was started without STARTTLS")
        path = Path(tempfile.mkstemp(prefix="klaxon-smtp-ca-", suffix=".pem")[1])
        self._ca.cert_pem.write_to_path(str(path))
        return path

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """Accept a known user name with its password (aiosmtpd calls this)."""
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if login in self.logins and self.logins[login] == password:
                return AuthResult(success=True, auth_data=login)
        with self._lock:
            self.failed_logins += 1
        return AuthResult(success=False, handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """Record an accepted message (aiosmtpd calls this)."""
        if self.fail_with is not None:
            with self._lock:
                self.refused += 1
            return self.fail_with
        message = email.message_from_bytes(envelope.content, policy=default)
        assert isinstance(message, EmailMessage)
        received = Received(
            mail_from=str(envelope.mail_from),
            envelope_to=list(envelope.rcpt_tos),
            message=message,
            tls=session.ssl is not None,
            login=session.auth_data if session.authenticated else None,
        )
        with self._lock:
            self.received.append(received)
        return "250 Message accepted"

    def messages(self) -> list[EmailMessage]:
        """The parsed messages accepted so far."""
        with self._lock:
            return [received.message for received in self.received]

    def to(self, address: str) -> list[Received]:
        """Messages sent to `address`."""
        with self._lock:
            return [r for r in self.received if address in r.envelope_to]

    async def wait_for(
        self, count: int = 1, *, timeout_s: float = 10.0, address: str | None = None
    ) -> list[Received]:
        """Wait until at least `count` messages (to `address`) arrived; returns them."""
        got: list[Received] = []
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    with self._lock:
                        got = [
                            r for r in self.received if address is None or address in r.envelope_to
                        ]
                    if len(got) >= count:
                        return got
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"{len(got)} of {count} messages within {timeout_s}s") from None
