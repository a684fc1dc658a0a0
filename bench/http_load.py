"""A minimal keep-alive HTTP/1.1 client on raw asyncio streams, and a closed loop on it.

The client takes little of the CPU the servers under test need, so what a benchmark
offers them is not held back by the client first. It speaks only what the benchmarks
need: a GET or a JSON POST, a response with a Content-Length.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass


class Connection:
    """One keep-alive HTTP/1.1 connection to a server on this machine."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect."""
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        """Disconnect."""
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def get(self, path: str) -> tuple[int, bytes]:
        """GET `path`; the response's status and body."""
        return await self._exchange(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """POST the JSON `body` to `path` with `headers`; the response's status and body."""
        head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
        return await self._exchange("\r\n".join(head).encode() + body)

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            raise RuntimeError("connection not open")
        self.writer.write(request)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)


async def open_connections(port: int, n: int) -> list[Connection]:
    """`n` connections to `port`, open."""
    connections = [Connection(port) for _ in range(n)]
    await asyncio.gather(*(c.open() for c in connections))
    return connections


@dataclass(frozen=True)
class Loop:
    """What a closed loop did."""

    elapsed_s: float
    latencies_s: list[float]
    """Each request's, in the order they were answered."""
    failures: int


async def closed_loop(
    port: int,
    clients: int,
    duration_s: float,
    request: Callable[[Connection], Awaitable[bool]],
) -> Loop:
    """`clients` connections to `port`, each making `request` (true when it succeeded)
    back to back for `duration_s`."""
    latencies: list[float] = []
    failures = 0
    connections = await open_connections(port, clients)
    deadline = time.perf_counter() + duration_s

    async def client(connection: Connection) -> None:
        nonlocal failures
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            succeeded = await request(connection)
            latencies.append(time.perf_counter() - started)
            if not succeeded:
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(c.close() for c in connections))
    return Loop(elapsed, latencies, failures)
