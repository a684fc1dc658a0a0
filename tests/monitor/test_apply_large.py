"""A monitors-as-code document of 20,000 entries is applied in one go, or refused whole."""

import json

from tests.harness import Throwaway
from tests.monitor.helpers import prepare, running_monitor
from tests.monitor.targets import HttpTarget


async def test_twenty_thousand_entries_apply_in_one_go(env: Throwaway, target: HttpTarget) -> None:
    settings = await prepare(env)
    async with running_monitor(
        settings.model_copy(update={"scheduler_poll_interval_s": 60.0})
    ) as service:
        doc = [
            {
                "name": f"m-{i:05}",
                "product": "canvas-hosting",
                "url": f"{target.url}/{i}",
                "paused": True,
            }
            for i in range(20_000)
        ]
        bad = [*doc[:-1], {**doc[-1], "interval_s": 0.001}]
        headers = {**service.auth(), "Content-Type": "application/json"}
        refused = await service.client.post(
            "/v1/monitors/apply", content=json.dumps(bad), headers=headers, timeout=120
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "monitors[19999].interval_s"
        assert (await service.sql("SELECT count(*) FROM monitor"))[0][0] == 0
        applied = await service.client.post(
            "/v1/monitors/apply", content=json.dumps(doc), headers=headers, timeout=120
        )
        assert applied.status_code == 200, applied.text
        assert len(applied.json()["created"]) == 20_000
        assert (await service.sql("SELECT count(*) FROM monitor"))[0][0] == 20_000
