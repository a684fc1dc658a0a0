"""Running one check: an HTTP(S) request, a TCP connect, or a heartbeat deadline.

A check never raises: every failure becomes an `Outcome` with its reason. HTTP and
TCP checks go through `servicekit.outgoing` (the address guard, the caps) on one
shared client per replica.
"""

import asyncio
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

import httpx

from monitor.schemas import status_ranges
from servicekit.outgoing import (
    OutgoingPolicy,
    RefusedAddress,
    UnresolvableHost,
    open_tcp,
    read_capped,
)

REGION_HEADER = "X-Klaxon-Region"
DUE_HEADER = "X-Klaxon-Due"
"""The due time (epoch seconds) the request checks for: a target can tell a check run
twice from two checks."""


class Outcome(IntEnum):
    """What a check found, stored as a small integer; 0 and 1 are passes."""

    UP = 0
    SLOW = 1
    STATUS_CODE = 2
    KEYWORD = 3
    TIMEOUT = 4
    DNS = 5
    CONNECTION_REFUSED = 6
    TLS = 7
    CONNECTION = 8
    REFUSED_ADDRESS = 9
    HEARTBEAT_MISSED = 10
    HEARTBEAT_FAILED = 11

    @property
    def failed(self) -> bool:
        """True for every outcome that counts toward an outage."""
        return self >= Outcome.STATUS_CODE

    @property
    def reason(self) -> str:
        """The outcome's name in events and the API (``connection_refused``)."""
        return self.name.lower()


@dataclass(frozen=True)
class Result:
    """One check's outcome."""

    outcome: Outcome
    latency_ms: int
    error: str | None = None
    cert_expires_at: datetime | None = None


@dataclass
class Clients:
    """The replica's shared HTTP clients (verifying TLS, and not) and the outgoing policy."""

    verifying: httpx.AsyncClient
    trusting: httpx.AsyncClient
    policy: OutgoingPolicy


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _cert_expiry(response: httpx.Response) -> datetime | None:
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    ssl_object = stream.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    if cert and "notAfter" in cert:
        return datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)
    der = ssl_object.getpeercert(binary_form=True)  # not verified: only the raw form is given
    return not_after(der) if der else None


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at `at`."""
    tag = data[at]
    length = data[at + 1]
    start = at + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    return tag, start, start + length


def not_after(der: bytes) -> datetime | None:
    """The expiry (validity notAfter) of a DER certificate, without a crypto library."""
    try:
        _, cert, _ = _tlv(der, 0)
        _, at, _ = _tlv(der, cert)  # tbsCertificate
        tag, _, end = _tlv(der, at)
        if tag == 0xA0:  # explicit version
            at = end
        for _ in range(3):  # serial number, signature algorithm, issuer
            _, _, at = _tlv(der, at)
        _, validity, _ = _tlv(der, at)
        _, _, after_not_before = _tlv(der, validity)
        tag, start, end = _tlv(der, after_not_before)
        text = der[start:end].decode()
        fmt = "%y%m%d%H%M%SZ" if tag == 0x17 else "%Y%m%d%H%M%SZ"
        return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


def _classify(exc: BaseException) -> tuple[Outcome, str]:
    if isinstance(exc, RefusedAddress):
        return Outcome.REFUSED_ADDRESS, str(exc)
    if isinstance(exc, UnresolvableHost):
        return Outcome.DNS, str(exc)
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return Outcome.TIMEOUT, "timed out"
    text = f"{type(exc).__name__}: {exc}"[:500]
    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, ssl.SSLError) or "CERTIFICATE" in str(chain).upper():
            return Outcome.TLS, text
        if isinstance(chain, ConnectionRefusedError) or "refused" in str(chain).lower():
            return Outcome.CONNECTION_REFUSED, "connection refused"
        chain = chain.__cause__ or chain.__context__
    return Outcome.CONNECTION, text


async def check_http(
    clients: Clients, target: dict[str, Any], *, timeout_s: float, region: str, due: datetime
) -> Result:
    """Request the target's URL and judge status, keyword and response time."""
    client = clients.verifying if target.get("verify_tls", True) else clients.trusting
    headers = {
        **target.get("headers", {}),
        REGION_HEADER: region,
        DUE_HEADER: f"{due.timestamp():.6f}",
    }
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream(
                target.get("method", "GET"),
                target["url"],
                headers=headers,
                content=target.get("body"),
                follow_redirects=target.get("follow_redirects", True),
                timeout=timeout_s,
            ) as response:
                cert_expires_at = _cert_expiry(response)
                keyword = target.get("keyword")
                body = b""
                if keyword:
                    body = await read_capped(
                        response, clients.policy.max_response_bytes, truncate=True
                    )
    except Exception as exc:
        outcome, error = _classify(exc)
        return Result(outcome, _elapsed_ms(started), error)
    latency_ms = _elapsed_ms(started)
    ranges = status_ranges(target.get("expected_status", ["200-399"]))
    if not any(low <= response.status_code <= high for low, high in ranges):
        return Result(
            Outcome.STATUS_CODE, latency_ms, f"status {response.status_code}", cert_expires_at
        )
    if keyword:
        found = keyword.encode() in body
        if found == bool(target.get("keyword_absent")):
            verb = "found" if found else "missing"
            return Result(
                Outcome.KEYWORD, latency_ms, f"keyword {keyword!r} {verb}", cert_expires_at
            )
    degraded_ms = target.get("degraded_ms")
    if degraded_ms and latency_ms > degraded_ms:
        return Result(
            Outcome.SLOW,
            latency_ms,
            f"answered in {latency_ms} ms (over {degraded_ms} ms)",
            cert_expires_at,
        )
    return Result(Outcome.UP, latency_ms, None, cert_expires_at)


async def check_tcp(clients: Clients, target: dict[str, Any], *, timeout_s: float) -> Result:
    """Open a TCP connection to the target's host and port."""
    started = time.perf_counter()
    try:
        _, writer = await open_tcp(
            target["host"], int(target["port"]), clients.policy, timeout_s=timeout_s
        )
    except Exception as exc:
        outcome, error = _classify(exc)
        return Result(outcome, _elapsed_ms(started), error)
    writer.close()
    return Result(Outcome.UP, _elapsed_ms(started))


def check_heartbeat(last_ping_at: datetime | None, target: dict[str, Any], now: datetime) -> Result:
    """Judge a heartbeat at its deadline: a ping within period + grace passes."""
    limit = float(target["period_s"]) + float(target.get("grace_s", 0))
    if last_ping_at is not None and (now - last_ping_at).total_seconds() <= limit:
        return Result(Outcome.UP, 0)
    return Result(Outcome.HEARTBEAT_MISSED, 0, f"no ping within {limit:g} s")
