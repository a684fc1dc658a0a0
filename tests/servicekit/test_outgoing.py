"""The outgoing HTTP client: the address guard after DNS and on every redirect, and its caps."""

import ipaddress
import ssl

import httpx
import pytest
import trustme

from servicekit.outgoing import (
    LOOPBACK,
    OutgoingPolicy,
    RefusedAddress,
    ResponseTooLarge,
    check_host,
    check_url,
    create_client,
    open_tcp,
    read_capped,
    refusal_reason,
)
from tests.monitor.targets import http_target, tcp_target

ALLOW_LOOPBACK = OutgoingPolicy.of(
    LOOPBACK, timeout_s=2.0, max_redirects=2, max_response_bytes=1000
)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.5", "private"),
        ("169.254.1.1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        ("100.64.0.1", "reserved"),
        ("8.8.8.8", None),
    ],
)
def test_addresses_are_refused_by_kind(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


async def test_loopback_is_refused_by_default_after_dns_resolution() -> None:
    async with http_target() as target, create_client(OutgoingPolicy()) as client:
        # "localhost" is a name: only its resolved address tells it is loopback
        with pytest.raises(RefusedAddress) as refused:
            await client.get(f"http://localhost:{target.port}/")
        assert refused.value.reason == "loopback"
        assert target.seen == []


async def test_an_allowed_network_is_reached() -> None:
    async with http_target() as target, create_client(ALLOW_LOOPBACK) as client:
        response = await client.get(f"{target.url}/hello")
    assert response.status_code == 200
    assert [seen.path for seen in target.seen] == ["/hello"]


async def test_a_redirect_to_a_refused_address_is_refused() -> None:
    only_127_0_0_1 = OutgoingPolicy.of(["127.0.0.1/32"])
    async with http_target() as target, create_client(only_127_0_0_1) as client:
        to = "http://169.254.169.254/latest/meta-data/"
        with pytest.raises(RefusedAddress) as refused:
            await client.get(f"{target.url}/redirect?to={to}")
    assert refused.value.reason == "cloud metadata"
    assert [seen.path for seen in target.seen] == ["/redirect"]


async def test_redirects_are_capped() -> None:
    async with http_target() as target, create_client(ALLOW_LOOPBACK) as client:
        url = f"{target.url}/end"
        for _ in range(3):
            url = f"{target.url}/redirect?to={url}"
        with pytest.raises(httpx.TooManyRedirects):
            await client.get(url)


async def test_response_bodies_are_capped() -> None:
    async with http_target() as target, create_client(ALLOW_LOOPBACK) as client:
        await target.switch("big")
        async with client.stream("GET", target.url) as response:
            with pytest.raises(ResponseTooLarge):
                await read_capped(response, ALLOW_LOOPBACK.max_response_bytes)
        async with client.stream("GET", target.url) as response:
            head = await read_capped(response, 1000, truncate=True)
    assert len(head) == 1000


async def test_requests_time_out() -> None:
    async with http_target() as target:
        await target.switch("hang")
        async with create_client(OutgoingPolicy.of(LOOPBACK, timeout_s=0.2)) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(target.url)


async def test_tls_is_verified_against_the_host_name_though_the_address_is_pinned() -> None:
    ca = trustme.CA()
    server = ca.issue_cert("localhost").configure_cert
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with http_target(server_context) as target:
        async with create_client(ALLOW_LOOPBACK, verify=client_context) as client:
            assert (await client.get(target.url)).status_code == 200
        async with create_client(ALLOW_LOOPBACK) as untrusting:
            with pytest.raises(httpx.ConnectError):
                await untrusting.get(target.url)


async def test_check_url_explains_bad_input() -> None:
    policy = OutgoingPolicy()
    assert await check_url("ftp://example.com/", policy) == "must be an http or https URL"
    assert "loopback" in (await check_url("http://127.0.0.1:8080/", policy) or "")
    assert "cloud metadata" in (await check_url("http://169.254.169.254/", policy) or "")
    assert await check_url("http://[::ffff:10.0.0.1]/", policy) is not None
    assert await check_url("http://127.0.0.1:8080/", ALLOW_LOOPBACK) is None


@pytest.mark.parametrize("host", ["a..b", "x" * 64 + ".example.com", ".", "\u00e4" * 70])
async def test_a_host_name_that_cannot_be_encoded_is_explained(host: str) -> None:
    assert "not a valid host name" in (await check_host(host, 80, OutgoingPolicy()) or "")
    url = f"http://{host}/"
    assert await check_url(url, OutgoingPolicy()) is not None


async def test_tcp_connections_pass_the_same_guard() -> None:
    async with tcp_target() as target:
        with pytest.raises(RefusedAddress):
            await open_tcp("localhost", target.port, OutgoingPolicy(), timeout_s=1)
        _, writer = await open_tcp("localhost", target.port, ALLOW_LOOPBACK, timeout_s=1)
        writer.close()
