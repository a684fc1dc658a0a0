"""`python -m intake serve` refuses an oversized request head while it is still arriving:
the server answers 431 before the head has ended, so it never holds a megabyte header."""

import asyncio
import contextlib
import json

from intake.__main__ import SERVICE as INTAKE
from tests.harness import Throwaway, service_process

MAX_HEADER_BYTES = 8 * 1024


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before closing the connection."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def test_a_megabyte_header_is_refused_by_the_server_before_it_ends(env: Throwaway) -> None:
    async with service_process(env, INTAKE, max_header_bytes=MAX_HEADER_BYTES) as intake:
        reader, writer = await asyncio.open_connection("127.0.0.1", intake.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: intake\r\nX-Padding: ")
        sent = 0
        answered = asyncio.create_task(_answer(reader))
        with contextlib.suppress(ConnectionError):
            while sent < 1024 * 1024 and not answered.done():
                writer.write(b"a" * 16384)  # the header never ends: no CRLF CRLF is sent
                await writer.drain()
                sent += 16384
                await asyncio.sleep(0.02)
        async with asyncio.timeout(10):
            response = await answered
        writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431 "), response[:200]
        assert b"content-type: application/problem+json" in head.lower()
        assert json.loads(body)["limit_bytes"] == 2 * MAX_HEADER_BYTES
        assert sent < 1024 * 1024  # refused long before the client finished its header

        # Below the server's bound but over the app's limit: the app's exact 431.
        async with intake.client() as client:
            over = await client.get("/healthz", headers={"X-Padding": "a" * (MAX_HEADER_BYTES + 1)})
            assert over.status_code == 431
            assert over.json()["limit_bytes"] == MAX_HEADER_BYTES
            # A request body of any size is not counted as head.
            body_only = await client.post(
                "/v1/tickets", content=b"x" * (4 * MAX_HEADER_BYTES), headers={"X-A": "b"}
            )
            assert body_only.status_code == 401
            assert (await client.get("/healthz")).status_code == 200
