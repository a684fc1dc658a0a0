"""The status page in a real browser (Debian's Chromium through Playwright): readable on a
phone without JavaScript, text for every colour, enough contrast."""

import asyncio
import contextlib
import re
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import async_playwright

from tests.harness import eventually
from tests.intake.helpers import inject
from tests.statuspage.helpers import StatusPages, monitor_down

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"
)


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app whose lifespan already runs on a real port; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def _luminance(rgb: str) -> float:
    channels = [int(v) / 255 for v in re.findall(r"\d+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    """The WCAG contrast ratio of two CSS rgb() colours."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


async def test_a_phone_without_javascript_shows_the_outage_in_words(
    statuspage: StatusPages,
) -> None:
    await statuspage.page()
    web = await statuspage.component()
    await inject(statuspage.env, monitor_down(uuid.uuid4()), producer="monitor")

    async def down() -> bool:
        return await statuspage.component_status(web["id"]) == "major_outage"

    await eventually(down)
    async with serving(statuspage.app) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            phone = await browser.new_context(
                viewport={"width": 375, "height": 740}, java_script_enabled=False
            )
            page = await phone.new_page()
            response = await page.goto(f"{base}/status/canvas/")
            assert response is not None
            assert response.status == 200
            banner = page.locator("section.banner h1")
            assert await banner.is_visible()
            assert "Major Service Outage" in await banner.inner_text()
            status = page.locator("li.component .status")
            assert "Major outage" in await status.inner_text()
            assert await page.locator("#incidents-heading").is_visible()
            assert await page.locator("li.component svg rect title").count() == 90
            await phone.close()

            context = await browser.new_context(viewport={"width": 375, "height": 740})
            page = await context.new_page()
            await page.goto(f"{base}/status/canvas/")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"the page scrolls sideways on a phone ({width}px)"
            for selector in ("section.banner h1", "li.component .status", ".meta"):
                colours = await page.locator(selector).first.evaluate(
                    "e => { const s = getComputedStyle(e); let b = e;"
                    " let bg = getComputedStyle(b).backgroundColor;"
                    " while (bg === 'rgba(0, 0, 0, 0)' && b.parentElement) {"
                    " b = b.parentElement; bg = getComputedStyle(b).backgroundColor; }"
                    " return [s.color, bg === 'rgba(0, 0, 0, 0)' ? 'rgb(255, 255, 255)' : bg]; }"
                )
                ratio = contrast(*colours)
                assert ratio >= 4.5, f"{selector}: contrast {ratio:.2f} of {colours}"
            await context.close()
        finally:
            await browser.close()
