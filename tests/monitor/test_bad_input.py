"""Bad input on every route is a problem+json 4xx, never a 500 or a raw exception."""

import json
from typing import Any

import pytest

from tests.harness import Throwaway
from tests.monitor.helpers import Monitor, prepare, running_monitor
from tests.monitor.targets import HttpTarget


@pytest.fixture
async def service(env: Throwaway) -> Any:
    settings = await prepare(env)
    async with running_monitor(settings) as running:
        yield running


def _refused(response: Any, status: int | None = None) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.text
    assert "Traceback" not in response.text


async def test_every_route_refuses_bad_input_as_a_problem(
    service: Monitor, target: HttpTarget
) -> None:
    auth = service.auth()
    client = service.client
    good = {"name": "web", "product": "canvas-hosting", "url": f"{target.url}/"}
    created = await service.create(**{k: v for k, v in good.items() if k != "product"})
    mid = created["id"]
    bodies: list[Any] = [
        None,
        [],
        "x",
        {**good, "interval_s": "soon"},
        {**good, "name": "a\x00b"},
        {**good, "tags": ["a\x00"]},
        {**good, "product": "p\x00"},
        {**good, "url": "http://exa\x00mple.com/"},
        {**good, "headers": {"X-A\x00": "b"}},
        {**good, "expected_status": [999999999999]},
        {**good, "keyword": "k" * 1_000_000},
        {**good, "regions": [None]},
        {**good, "name": "n" * 10_000},
        {"kind": "tcp", "name": "t", "product": "canvas-hosting", "host": "h\x00", "port": 1},
        {"kind": "tcp", "name": "t", "product": "canvas-hosting", "host": "x", "port": 70000},
        {"kind": "tcp", "name": "t", "product": "canvas-hosting", "host": "a..b", "port": 1},
        {**good, "url": f"http://{'x' * 64}.example.com/"},
    ]
    for body in bodies:
        raw = json.dumps(body).encode()
        _refused(await client.post("/v1/monitors", content=raw, headers=auth))
        _refused(await client.put(f"/v1/monitors/{mid}", content=raw, headers=auth))
        _refused(await client.post("/v1/patch-windows", content=raw, headers=auth))
    _refused(await client.post("/v1/monitors", content=b"{", headers=auth))
    _refused(await client.post("/v1/monitors", content=b"\xff\xfe", headers=auth))
    huge = b'{"name": "' + b"x" * 30_000_000 + b'"}'
    _refused(await client.post("/v1/monitors", content=huge, headers=auth), 413)
    _refused(await client.post("/v1/monitors/apply", content=huge, headers=auth), 413)
    for bad_id in ("nope", "1", "%00", "0" * 500):
        for path in ("", "/results", "/uptime?window=24h"):
            _refused(await client.get(f"/v1/monitors/{bad_id}{path}", headers=auth))
        _refused(await client.delete(f"/v1/monitors/{bad_id}", headers=auth))
        _refused(await client.post(f"/v1/monitors/{bad_id}/pause", headers=auth))
        _refused(await client.get(f"/v1/patch-windows/{bad_id}", headers=auth))
    for query in (
        "limit=0",
        "limit=x",
        "after=%00",
        "product=%00",
        "tag=%00",
        "state=%00",
        "state=bogus",
    ):
        response = await client.get(f"/v1/monitors?{query}", headers=auth)
        assert response.status_code in (200, 422), (query, response.text)
        if response.status_code != 200:
            _refused(response)
    for query in ("product=%00", "limit=-1", "since=x"):
        for path in ("/v1/verification/runs", "/v1/verification/runs.csv"):
            response = await client.get(f"{path}?{query}", headers=auth)
            assert response.status_code in (200, 422), (path, query, response.text)
    _refused(await client.get(f"/v1/monitors/{mid}/uptime?window=1y", headers=auth))
    _refused(await client.get(f"/v1/monitors/{mid}/results?limit=0", headers=auth))
    for token in ("%00" * 12, "a" * 10, "a" * 65, "../../etc/pass"):
        _refused(await client.post(f"/v1/heartbeats/{token}"))
    _refused(await client.post(f"/v1/heartbeats/{'a' * 20}?status=weird"))


@pytest.mark.parametrize(
    "body",
    [
        b"monitors: [",
        b"!!python/object/apply:os.system ['true']",
        b"- &a [*a]",
        b"monitors:\n  - name: a\x00\n",
        b"42",
        b"monitors: {a: 1}",
        b"monitors:\n  - name: x\n    product: canvas-hosting\n    url: http://\x00/\n",
        b"patch_windows:\n  - name: w\n    cron: 'nope'\n",
        b"\xff\xfe\xfd",
    ],
)
async def test_bad_yaml_in_apply_is_a_problem(service: Monitor, body: bytes) -> None:
    headers = {**service.auth(), "Content-Type": "application/yaml"}
    _refused(await service.client.post("/v1/monitors/apply", content=body, headers=headers))
    assert (await service.sql("SELECT count(*) FROM monitor"))[0][0] == 0
