"""The HTTP server's own bound on a request head, so an oversized header is refused
while it is still arriving rather than after the server has read it in full.

uvicorn's httptools protocol keeps every header byte until the head ends, with no
limit (its h11 protocol has one, ``h11_max_incomplete_event_size``, but parses in
Python at a fraction of the speed). `capped_httptools(head_max_bytes)` is that
protocol with a count of the bytes received while a request's head is still
open: past `head_max_bytes` the server answers 431 problem+json at once, closes
its side, reads and drops what the client still sends for `LINGER_S` (so the
answer is not lost to a reset), then closes the connection. No route runs.

The count is of raw bytes (request line, header names, values and framing), and
only of reads that fall wholly inside a head, so a request is never refused for
its body; a head can pass the limit by at most one read (256 KiB) before it is
refused. `server_options(app)` sets it to twice the app's exact limit
(`servicekit.api_middleware.HeaderLimitMiddleware`, which answers the same 431
for heads between the two), and ``python -m <service> serve`` passes it to
uvicorn.
"""

import asyncio
import json
from typing import Any

from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from servicekit.api_middleware import DEFAULT_MAX_HEADER_BYTES
from servicekit.problems import PROBLEM_JSON

LINGER_S = 1.0
"""How long a refused connection's further bytes are read and dropped before it closes."""


class _HeadCappedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over `head_max_bytes`."""

    head_max_bytes = 2 * DEFAULT_MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._heads_done = 0
        self._head_bytes = 0
        self._refused = False

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_done += 1
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # dropped while the refusal lingers
        whole_read_in_head = self._in_head
        heads_done = self._heads_done
        super().data_received(data)
        if not (whole_read_in_head and self._in_head and heads_done == self._heads_done):
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.head_max_bytes and not self.transport.is_closing():
            self._refuse()

    def _refuse(self) -> None:
        self._refused = True
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Request header fields too large",
                "status": 431,
                "detail": f"the request head is over {self.head_max_bytes} bytes",
                "limit_bytes": self.head_max_bytes,
            }
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            + f"content-type: {PROBLEM_JSON}\r\n".encode()
            + f"content-length: {len(body)}\r\n".encode()
            + b"connection: close\r\n\r\n"
            + body
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)


def capped_httptools(head_max_bytes: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol refusing request heads over `head_max_bytes` with 431."""
    return type(
        "HeadCappedHttpToolsProtocol", (_HeadCappedProtocol,), {"head_max_bytes": head_max_bytes}
    )


def server_options(app: FastAPI) -> dict[str, Any]:
    """uvicorn options bounding a request head at twice the app's header limit (the one
    `install_api_middleware` set, else the default)."""
    max_header_bytes = getattr(app.state, "max_header_bytes", DEFAULT_MAX_HEADER_BYTES)
    return {"http": capped_httptools(2 * int(max_header_bytes))}
