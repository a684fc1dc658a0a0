"""An HTTP client for user-supplied URLs: timeouts, a redirect cap, a response-size cap,
and a guard against server-side request forgery.

A monitor's target, a webhook or a status-page push is a URL someone typed; left
alone, such a URL can reach the cloud's metadata service or a database on the
private network. Every connection the client opens (the first request and each
redirect) resolves the host itself, refuses it if any address it resolves to is
loopback, private, link-local, cloud metadata, unspecified, multicast or otherwise
not global, and then connects to the very address it checked, so a DNS answer that
changes between check and connect (rebinding) gains nothing. Networks in
`OutgoingPolicy.allow` are let through (tests allow loopback).

Proxies from the environment are ignored: a proxy would connect on our behalf to
an address this guard never saw.
"""

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
"""Cloud metadata services (AWS, ECS, Alibaba, AWS over IPv6): refused unless allowed."""

LOOPBACK = ("127.0.0.0/8", "::1/128")
"""What tests allow: their targets listen on loopback."""


class RefusedAddress(httpx.ConnectError):
    """The URL's host resolves to an address outgoing requests may not reach."""

    def __init__(self, host: str, address: IPAddress, reason: str) -> None:
        super().__init__(f"{host} resolves to {address}, a {reason} address; refused")
        self.host = host
        self.address = address
        self.reason = reason


class UnresolvableHost(httpx.ConnectError):
    """The host name has no address (DNS failure)."""


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` may not be reached (None if it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private:
        return "private"
    if address.is_multicast:
        return "multicast"
    if not address.is_global:
        return "reserved"
    return None


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Networks from strings such as ``127.0.0.0/8`` or ``10.1.2.3``."""
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


@dataclass(frozen=True)
class OutgoingPolicy:
    """Limits of outgoing requests to user-supplied URLs."""

    allow: tuple[IPNetwork, ...] = ()
    """Networks let through although the guard would refuse them (e.g. loopback in tests)."""
    timeout_s: float = 10.0
    max_redirects: int = 5
    max_response_bytes: int = 1_000_000
    max_connections: int = 1000
    user_agent: str = "Klaxon/1.0"
    resolve_timeout_s: float = 5.0

    @classmethod
    def of(cls, allow: Sequence[str] = (), **limits: Any) -> "OutgoingPolicy":
        """A policy from strings (as settings hold them)."""
        return cls(allow=parse_networks(allow), **limits)

    def refuses(self, address: IPAddress) -> str | None:
        """Why `address` is refused under this policy (None if allowed)."""
        if any(address in network for network in self.allow):
            return None
        return refusal_reason(address)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def _lookup(host: str, port: int, timeout_s: float) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        raise UnresolvableHost(f"cannot resolve {host}: {exc}") from exc
    except UnicodeError as exc:  # an empty or over-long label fails the IDNA encoding
        raise UnresolvableHost(f"{host} is not a valid host name") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnresolvableHost(f"{host} has no address")
    return addresses


async def resolve(host: str, port: int, policy: OutgoingPolicy) -> list[IPAddress]:
    """Every address of `host`; raises `RefusedAddress` if any is refused by `policy`."""
    literal = _literal(host)
    addresses = [literal] if literal else await _lookup(host, port, policy.resolve_timeout_s)
    for address in addresses:
        reason = policy.refuses(address)
        if reason is not None:
            raise RefusedAddress(host, address, reason)
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address guard in front of every connect."""

    def __init__(self, policy: OutgoingPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port, self.policy)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable from user-supplied URLs")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    policy: OutgoingPolicy, *, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection passes the address guard."""
    limits = httpx.Limits(
        max_connections=policy.max_connections,
        max_keepalive_connections=min(policy.max_connections, 200),
    )
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
    ssl_context = ssl.create_default_context() if verify is True else None
    if isinstance(verify, ssl.SSLContext):
        ssl_context = verify
    elif verify is False:
        ssl_context = ssl.create_default_context()
        ssl_context.check_hostname = False
        ssl_context.verify_mode = ssl.CERT_NONE
    # httpx builds its pool without a way to pass a network backend; this pool is the
    # one it would build, with the guarded backend.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(policy),
    )
    return transport


def create_client(
    policy: OutgoingPolicy, *, verify: ssl.SSLContext | bool = True, follow_redirects: bool = True
) -> httpx.AsyncClient:
    """An httpx client for user-supplied URLs under `policy` (share one per process)."""
    return httpx.AsyncClient(
        transport=guarded_transport(policy, verify=verify),
        timeout=httpx.Timeout(policy.timeout_s),
        follow_redirects=follow_redirects,
        max_redirects=policy.max_redirects,
        trust_env=False,
        headers={"User-Agent": policy.user_agent},
    )


class ResponseTooLarge(httpx.HTTPError):
    """The response body is over the policy's cap."""


async def read_capped(response: httpx.Response, max_bytes: int, *, truncate: bool = False) -> bytes:
    """The body of a streamed `response`, at most `max_bytes` of it.

    Past the cap it raises `ResponseTooLarge`, or with `truncate` returns the first
    `max_bytes` (enough to look for a keyword) and stops reading.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            if not truncate:
                raise ResponseTooLarge(f"response body over {max_bytes} bytes")
            chunks.append(chunk[: max_bytes - (size - len(chunk))])
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def check_url(url: str, policy: OutgoingPolicy) -> str | None:
    """Why `url` cannot be requested under `policy` (None if it can): for validating input."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        return f"is not a valid URL: {exc}"
    if parsed.scheme not in ("http", "https"):
        return "must be an http or https URL"
    if not parsed.host:
        return "has no host"
    return await check_host(
        parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80), policy
    )


async def check_host(host: str, port: int, policy: OutgoingPolicy) -> str | None:
    """Why `host` cannot be reached under `policy` (None if it can)."""
    try:
        await resolve(host, port, policy)
    except RefusedAddress as exc:
        return f"resolves to {exc.address}, a {exc.reason} address"
    except UnresolvableHost as exc:
        return str(exc)
    return None


async def open_tcp(
    host: str, port: int, policy: OutgoingPolicy, *, timeout_s: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to `host`:`port` through the same guard as HTTP requests."""
    addresses = await resolve(host, port, policy)
    async with asyncio.timeout(timeout_s):
        return await asyncio.open_connection(str(addresses[0]), port)
