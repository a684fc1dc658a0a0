"""The public page keeps showing the last truth while the database is unreachable."""

import asyncio

from sqlalchemy.engine import make_url

from statuspage_sync.settings import Settings
from tests.harness import Throwaway, eventually
from tests.proxy import TcpProxy
from tests.statuspage.helpers import running_statuspage


async def test_the_public_page_is_served_from_memory_while_the_database_is_away(
    env: Throwaway,
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    direct = env.settings(Settings, schema="statuspage")
    url = make_url(direct.database_url).set(host="127.0.0.1", port=proxy.port)
    try:
        async with running_statuspage(
            env,
            database_url=url.render_as_string(hide_password=False),
            reconnect_max_s=0.5,
            render_max_age_s=0.2,
        ) as statuspage:
            await statuspage.page()
            web = await statuspage.component()
            before = (await statuspage.public("canvas/api/v2/summary.json")).json()

            await proxy.cut()
            await asyncio.sleep(0.5)  # past render_max_age_s: a rendering is attempted, fails
            for path in ("canvas/", "canvas/api/v2/summary.json", "canvas/history.atom"):
                response = await statuspage.public(path)
                assert response.status_code == 200, path
            assert (await statuspage.public("canvas/api/v2/summary.json")).json() == before
            assert (await statuspage.public("nope/")).status_code == 404
            admin = await statuspage.client.get("/v1/pages", headers=statuspage.auth())
            assert admin.status_code == 503

            await proxy.start()

            async def admin_back() -> bool:
                response = await statuspage.client.put(
                    f"/v1/pages/canvas/components/{web['id']}/manual-status",
                    json={"status": "partial_outage"},
                    headers=statuspage.auth(),
                )
                return response.status_code == 204

            await eventually(admin_back, timeout_s=10)

            async def shows_change() -> bool:
                summary = (await statuspage.public("canvas/api/v2/summary.json")).json()
                return bool(summary["components"][0]["status"] == "partial_outage")

            await eventually(shows_change, timeout_s=10)
    finally:
        await proxy.close()
