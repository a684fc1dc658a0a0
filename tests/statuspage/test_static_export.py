"""The static export: every page written to a directory after each change, and on demand,
readable from a plain static file server away from Klaxon."""

import asyncio
import contextlib
import json
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.harness import Throwaway, eventually
from tests.intake.helpers import inject
from tests.statuspage.helpers import monitor_down, running_statuspage


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def static_server(directory: Path) -> AsyncIterator[str]:
    """``python -m http.server`` serving `directory`; yields its base URL."""
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(directory),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:

            async def up() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(base)
                    return True
                return False

            await eventually(up)
        yield base
    finally:
        process.terminate()
        await process.wait()


def _summary(directory: Path) -> dict[str, object] | None:
    path = directory / "canvas" / "api" / "v2" / "summary.json"
    if not path.exists():
        return None
    loaded: dict[str, object] = json.loads(path.read_bytes())
    return loaded


async def test_every_change_is_exported_and_a_static_server_shows_it(
    env: Throwaway, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    async with running_statuspage(env, export_dir=str(export)) as statuspage:
        await statuspage.page()
        await statuspage.component()
        await eventually(lambda: _summary(export) is not None, timeout_s=5)
        await inject(env, monitor_down(uuid.uuid4()), producer="monitor")

        def outage_exported() -> bool:
            summary = _summary(export)
            return bool(
                summary
                and summary["status"]
                == {
                    "indicator": "critical",
                    "description": "Major Service Outage",
                }
            )

        await eventually(outage_exported, timeout_s=5)

    # Klaxon is gone; the static copy keeps telling the truth.
    async with static_server(export) as base, httpx.AsyncClient(base_url=base) as client:
        page = await client.get("/canvas/index.html")
        assert page.status_code == 200
        assert "Major Service Outage" in page.text
        assert "Web app unavailable" in page.text
        css = await client.get("/canvas/style.css")
        assert css.status_code == 200
        summary = (await client.get("/canvas/api/v2/summary.json")).json()
        assert summary["components"][0]["status"] == "major_outage"
        feed = await client.get("/canvas/history.atom")
        assert b"Web app unavailable" in feed.content
        directory_index = await client.get("/canvas/")
        assert directory_index.text == page.text


async def test_the_export_command_writes_every_page(env: Throwaway, tmp_path: Path) -> None:
    async with running_statuspage(env) as statuspage:
        await statuspage.page()
        await statuspage.page(slug="atomic", title="Atomic Apps", products=["atomic-apps"])
        settings = statuspage.settings
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "statuspage_sync",
        "export",
        "--output",
        str(tmp_path),
        env={
            **os.environ,
            "KLAXON_DATABASE_URL": settings.database_url,
            "KLAXON_DB_SCHEMA": settings.db_schema,
        },
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    assert json.loads(out)["exported"] == ["atomic", "canvas"]
    async with static_server(tmp_path) as base, httpx.AsyncClient(base_url=base) as client:
        for slug, title in (("atomic", "Atomic Apps"), ("canvas", "Canvas Hosting")):
            status = (await client.get(f"/{slug}/api/v2/status.json")).json()
            assert status["page"]["name"] == title
            assert status["status"]["indicator"] == "none"
            page = await client.get(f"/{slug}/")
            assert "All Systems Operational" in page.text


async def test_a_renamed_pages_old_copy_is_removed_from_the_export(
    env: Throwaway, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    (export / "notes").mkdir(parents=True)  # not a page's copy: left alone
    async with running_statuspage(env, export_dir=str(export)) as statuspage:
        await statuspage.page()
        await eventually(lambda: _summary(export) is not None, timeout_s=5)
        renamed = await statuspage.client.patch(
            "/v1/pages/canvas", json={"slug": "canvas-status"}, headers=statuspage.auth()
        )
        assert renamed.status_code == 200

        def moved() -> bool:
            new = export / "canvas-status" / "api" / "v2" / "summary.json"
            return new.is_file() and not (export / "canvas").exists()

        await eventually(moved, timeout_s=5)
    assert (export / "notes").is_dir()
