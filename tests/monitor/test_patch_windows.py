"""Patch windows prove monitoring works: a window with a failure passes, one without fails."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.harness import Throwaway, eventually
from tests.intake.helpers import listening, next_event
from tests.monitor.helpers import Monitor, add_product, collect, prepare, running_monitor
from tests.monitor.targets import HttpTarget


async def _window(service: Monitor, **body: Any) -> dict[str, Any]:
    response = await service.client.post("/v1/patch-windows", json=body, headers=service.auth())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_window_whose_monitors_saw_a_failure_passes_and_one_without_fails(
    env: Throwaway, target: HttpTarget
) -> None:
    settings = await prepare(env)
    await add_product(settings, "billing", "Billing")
    async with listening(env, "monitor.*") as events, running_monitor(settings) as service:
        patched = await service.create(
            name="canvas", url=f"{target.url}/canvas", failures_to_down=1
        )
        quiet = await service.create(name="billing", product="billing", url=f"{target.url}/billing")
        await eventually(lambda: service.in_state(patched["id"], "up"), timeout_s=5)
        now = datetime.now(UTC)
        window = await _window(
            service,
            name="monthly patching",
            starts_at=now.isoformat(),
            ends_at=(now + timedelta(seconds=2.5)).isoformat(),
            products=["canvas-hosting", "billing"],
        )
        target.fail_paths = {"/canvas"}  # patching takes canvas down; billing stays up
        down = await next_event(events, "monitor.down", timeout_s=5)
        assert down.payload["in_patch_window"] is True
        target.fail_paths = set()
        verdicts = await collect(
            events, "monitor.verification_passed", "monitor.verification_failed", timeout_s=10
        )
        passed = verdicts["monitor.verification_passed"]
        failed = verdicts["monitor.verification_failed"]
        assert passed.payload["product"]["slug"] == "canvas-hosting"
        assert passed.payload["patch_window_id"] == window["id"]
        assert passed.payload["evidence"][0]["monitor_id"] == patched["id"]
        assert failed.payload["product"] == {"slug": "billing", "name": "Billing"}
        assert failed.payload["monitor_ids"] == [quiet["id"]]
        assert "monitoring saw nothing" in failed.payload["reason"]

        runs = await service.client.get("/v1/verification/runs", headers=service.auth())
        outcomes = {run["product"]: run["outcome"] for run in runs.json()}
        assert outcomes == {"canvas-hosting": "passed", "billing": "failed"}
        exported = await service.client.get("/v1/verification/runs.csv", headers=service.auth())
        assert exported.headers["content-type"].startswith("text/csv")
        lines = exported.text.strip().splitlines()
        assert lines[0].startswith("id,window_name,product")
        assert len(lines) == 3


async def test_bad_windows_are_refused(env: Throwaway) -> None:
    settings = await prepare(env)
    async with running_monitor(settings) as service:
        now = datetime.now(UTC)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"cron": "not a cron", "duration_s": 60, "products": ["canvas-hosting"]}, "cron"),
            (
                {"cron": "0 2 * * 2#2", "duration_s": 7200, "timezone": "Mars/Base", "tags": ["x"]},
                "timezone",
            ),
            (
                {
                    "starts_at": now.isoformat(),
                    "ends_at": (now - timedelta(hours=1)).isoformat(),
                    "tags": ["x"],
                },
                "ends_at",
            ),
            ({"cron": "0 2 * * *", "duration_s": 60, "products": ["unknown"]}, "products[0]"),
        ]
        for body, field in cases:
            response = await service.client.post(
                "/v1/patch-windows", json={"name": "w", **body}, headers=service.auth()
            )
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["field"] == field
        listed = await service.client.get("/v1/patch-windows", headers=service.auth())
        assert listed.json() == []
        recurring = await _window(
            service,
            name="second tuesday",
            cron="0 2 * * 2#2",
            timezone="Europe/London",
            duration_s=7200,
            products=["canvas-hosting"],
        )
        starts = datetime.fromisoformat(recurring["next_starts_at"])
        assert starts.weekday() == 1
        assert 8 <= starts.day <= 14
