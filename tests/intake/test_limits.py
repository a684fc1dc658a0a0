"""Bounded resources: oversized headers are refused, concurrent uploads are capped, and every
request is counted and timed by route and status in /metrics."""

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from intake.settings import Settings
from tests.harness import Throwaway, eventually
from tests.intake.helpers import Intake, dumps, running_intake, ticket_body


async def test_request_headers_over_the_limit_are_refused_with_431(intake: Intake) -> None:
    huge = {**intake.auth(), "X-Padding": "a" * (intake.settings.max_header_bytes + 1)}
    response = await intake.client.post("/v1/tickets", json=ticket_body(), headers=huge)
    assert response.status_code == 431
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["limit_bytes"] == intake.settings.max_header_bytes
    assert await intake.count("ticket") == 0
    fine = {**intake.auth(), "X-Padding": "a" * 1000}
    assert (await intake.client.post("/v1/tickets", json=ticket_body(), headers=fine)).is_success


class _SlowBody(httpx.AsyncByteStream):
    """A multipart body whose last bytes wait until `release` is set: an upload in progress."""

    def __init__(self, head: bytes, tail: bytes, release: asyncio.Event) -> None:
        self.head, self.tail, self.release = head, tail, release

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        yield self.head
        await self.release.wait()
        yield self.tail


def _multipart(subject: str) -> tuple[bytes, bytes, str]:
    boundary = "klaxonboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="ticket"\r\n\r\n'
        f"{dumps(ticket_body(subject=subject))}\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="log.txt"\r\n'
        "Content-Type: text/plain\r\n\r\nline one\n"
    ).encode()
    tail = f"line two\n\r\n--{boundary}--\r\n".encode()
    return head, tail, f"multipart/form-data; boundary={boundary}"


async def test_uploads_beyond_the_memory_budget_get_503_with_retry_after_and_others_proceed(
    env: Throwaway,
) -> None:
    largest = Settings().request_body_max_bytes  # what an upload without a length reserves
    async with running_intake(env, upload_memory_bytes=2 * largest, upload_wait_s=0.2) as intake:
        release = asyncio.Event()

        async def slow_upload(subject: str) -> httpx.Response:
            head, tail, content_type = _multipart(subject)
            return await intake.client.post(
                "/v1/tickets",
                content=_SlowBody(head, tail, release),
                headers={**intake.auth(), "Content-Type": content_type},
            )

        holding = [asyncio.create_task(slow_upload(f"slow {i}")) for i in range(2)]
        await _until_reserved(intake, 2 * largest)  # both mid-body, the budget spent
        head, tail, content_type = _multipart("one too many")
        refused = await intake.client.post(
            "/v1/tickets",
            content=head + tail,
            headers={**intake.auth(), "Content-Type": content_type},
        )
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) > 0
        assert refused.headers["content-type"] == "application/problem+json"
        # A JSON filing takes nothing from the upload budget.
        assert (
            await intake.client.post("/v1/tickets", json=ticket_body(), headers=intake.auth())
        ).is_success
        release.set()
        assert [(await task).status_code for task in holding] == [201, 201]
        assert intake.app.state.upload_budget.reserved_bytes == 0
        again = await intake.client.post(
            "/v1/tickets",
            content=head + tail,
            headers={**intake.auth(), "Content-Type": content_type},
        )
        assert again.status_code == 201, again.text
        assert await intake.count("ticket") == 4


async def test_uploads_reserve_their_declared_length_so_many_small_ones_run_at_once(
    env: Throwaway,
) -> None:
    budget = 1024 * 1024
    async with running_intake(env, upload_memory_bytes=budget, upload_wait_s=0.2) as intake:
        release = asyncio.Event()

        async def small_upload(subject: str) -> httpx.Response:
            head, tail, content_type = _multipart(subject)
            length = str(len(head) + len(tail))
            return await intake.client.post(
                "/v1/tickets",
                content=_SlowBody(head, tail, release),
                headers={**intake.auth(), "Content-Type": content_type, "Content-Length": length},
            )

        holding = [asyncio.create_task(small_upload(f"small {i}")) for i in range(6)]
        head, tail, content_type = _multipart("small 0")
        await _until_reserved(intake, 6 * (len(head) + len(tail)))  # six at once, mid-body
        # One that declares no length reserves the largest body: the whole budget.
        unsized = await intake.client.post(
            "/v1/tickets",
            content=_SlowBody(head, tail, asyncio.Event()),
            headers={**intake.auth(), "Content-Type": content_type},
        )
        assert unsized.status_code == 503, unsized.text
        release.set()
        assert [(await task).status_code for task in holding] == [201] * 6
        assert intake.app.state.upload_budget.reserved_bytes == 0


async def _until_reserved(intake: Intake, amount: int) -> None:
    budget = intake.app.state.upload_budget
    await eventually(lambda: budget.reserved_bytes == amount, timeout_s=10)


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_requests_are_counted_and_timed_by_route_template_and_status(
    intake: Intake,
) -> None:
    filed = await intake.file()
    reader = intake.auth(intake.reader_key)
    before = (await intake.client.get("/metrics")).text
    await intake.client.post("/v1/tickets", json=ticket_body(), headers=intake.auth())
    await intake.client.get(f"/v1/tickets/{filed['number']}", headers=reader)
    await intake.client.get(f"/v1/tickets/{filed['id']}", headers=reader)
    await intake.client.get("/v1/tickets/KLX-99999", headers=reader)
    await intake.client.get("/v1/nowhere", headers=reader)
    after = (await intake.client.get("/metrics")).text

    def added(name: str, method: str, route: str, status: str) -> float:
        labels = {"service": "intake", "method": method, "route": route, "status": status}
        key = tuple(sorted(labels.items()))
        return _samples(after, name).get(key, 0.0) - _samples(before, name).get(key, 0.0)

    counted = "klaxon_http_requests_total"
    assert added(counted, "POST", "/v1/tickets", "201") == 1
    assert added(counted, "GET", "/v1/tickets/{ref}", "200") == 2  # one label for every ticket
    assert added(counted, "GET", "/v1/tickets/{ref}", "404") == 1
    assert added(counted, "GET", "unmatched", "404") == 1
    counts = _samples(after, counted)
    assert not any(dict(labels)["route"].startswith("/v1/tickets/KLX") for labels in counts)
    timed = "klaxon_http_request_duration_seconds_count"
    assert added(timed, "POST", "/v1/tickets", "201") == 1
