"""Real servers for checks to hit: an HTTP(S) target switchable between failure modes, and
a TCP port that can be closed and opened again.

The HTTP target speaks HTTP/1.1 with keep-alive over asyncio streams (TLS with a
`trustme` certificate when asked), records every request it answers (path, the
checker's region header, when), and answers by its `mode`:

- ``up``: 200 with the keyword ``all systems go``;
- ``slow``: the same after `slow_s`;
- ``wrong_status``: 500;
- ``no_keyword``: 200 without the keyword;
- ``hang``: never answers (the check times out);
- ``refused``: the listener is closed (connection refused); switching back reopens it
  on the same port.

`fail_regions` makes it answer 500 only to requests whose ``X-Klaxon-Region`` is one of
those regions, and `fail_paths` only to requests for those paths. ``/redirect?to=<url>`` answers 302 to the URL whatever the mode.
"""

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

KEYWORD = "all systems go"


@dataclass
class Seen:
    """One request the target answered."""

    path: str
    region: str | None
    at: float
    headers: dict[str, str]


@dataclass
class HttpTarget:
    """A switchable HTTP(S) server on 127.0.0.1."""

    ssl_context: ssl.SSLContext | None = None
    mode: str = "up"
    slow_s: float = 0.5
    fail_regions: set[str] = field(default_factory=set)
    fail_paths: set[str] = field(default_factory=set)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        """Base URL of the target."""
        scheme = "https" if self.ssl_context else "http"
        host = "localhost" if self.ssl_context else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        """Listen (on the same port as before, if it had one)."""
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self.ssl_context, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop open connections."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def switch(self, mode: str) -> None:
        """Answer in `mode` from now on (``refused`` closes the listener)."""
        if mode == "refused":
            await self.stop()
        elif self._server is None:
            await self.start()
        for writer in list(self._writers):  # kept-alive connections see the new mode at once
            writer.close()
        self.mode = mode

    def requests(self, path: str | None = None, region: str | None = None) -> list[Seen]:
        """The requests seen, for one path and/or region."""
        return [
            s
            for s in self.seen
            if (path is None or s.path == path) and (region is None or s.region == region)
        ]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                _, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                await self._answer(writer, target, headers)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, ssl.SSLError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(
        self, writer: asyncio.StreamWriter, target: str, headers: dict[str, str]
    ) -> None:
        parts = urlsplit(target)
        region = headers.get("x-klaxon-region")
        status, body, extra = 200, f"<html>{KEYWORD}</html>", ""
        if parts.path == "/redirect":
            status, body = 302, ""
            extra = f"Location: {parse_qs(parts.query)['to'][0]}\r\n"
        elif parts.path in self.fail_paths or region in self.fail_regions:
            status, body = 500, "region failure"
        elif self.mode == "hang":
            await asyncio.sleep(3600)
        elif self.mode == "slow":
            await asyncio.sleep(self.slow_s)
        elif self.mode == "wrong_status":
            status, body = 500, "error"
        elif self.mode == "no_keyword":
            body = "<html>maintenance</html>"
        elif self.mode == "big":
            body = "x" * 3_000_000
        self.seen.append(Seen(parts.path, region, time.time(), headers))
        data = body.encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(data)}\r\n{extra}"
            "Content-Type: text/html\r\n\r\n".encode()
            + data
        )
        await writer.drain()


@contextlib.asynccontextmanager
async def http_target(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[HttpTarget]:
    """A started `HttpTarget`, stopped afterwards."""
    target = HttpTarget(ssl_context=ssl_context)
    await target.start()
    try:
        yield target
    finally:
        await target.stop()


@dataclass
class TcpTarget:
    """A TCP port that accepts connections while open."""

    port: int = 0
    _server: asyncio.Server | None = None

    async def open(self) -> None:
        """Accept connections (on the same port as before, if it had one)."""

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        self._server = await asyncio.start_server(
            accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Refuse connections."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


@contextlib.asynccontextmanager
async def tcp_target() -> AsyncIterator[TcpTarget]:
    """An open `TcpTarget`, closed afterwards."""
    target = TcpTarget()
    await target.open()
    try:
        yield target
    finally:
        await target.close()
