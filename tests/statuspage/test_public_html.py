"""The public HTML page and feeds: what a customer must see, readable without JavaScript."""

import uuid
from datetime import UTC, datetime, timedelta

from bs4 import BeautifulSoup, Tag
from sqlalchemy import insert, update

from statuspage_sync.models import component, component_status_span
from tests.harness import eventually
from tests.intake.helpers import inject
from tests.statuspage.helpers import StatusPages, monitor_down


def text_of(tag: Tag, selector: str) -> str:
    """The text of the first element under `tag` matching `selector` (which must exist)."""
    found = tag.select_one(selector)
    assert found is not None, selector
    return found.get_text(" ", strip=True)


async def _outage(statuspage: StatusPages) -> None:
    await statuspage.page(time_zone="Europe/Berlin")
    group = await statuspage.post("/v1/pages/canvas/groups", {"name": "Hosting"})
    web = await statuspage.component(group_id=group["id"])
    await statuspage.component(name="Status API", product=None)
    await inject(statuspage.env, monitor_down(uuid.uuid4()), producer="monitor")

    async def down() -> bool:
        return await statuspage.component_status(web["id"]) == "major_outage"

    await eventually(down)
    (incident,) = await statuspage.get("/v1/pages/canvas/incidents")
    eta = datetime.now(UTC) + timedelta(hours=1)
    await statuspage.post(
        f"/v1/pages/canvas/incidents/{incident['id']}/notices",
        {
            "body": "A failed <b>database</b> upgrade; rolling back.",
            "status": "identified",
            "expected_resolution_at": eta.isoformat(),
        },
    )


async def test_the_page_shows_a_customer_the_outage_what_is_known_and_when(
    statuspage: StatusPages,
) -> None:
    await _outage(statuspage)
    response = await statuspage.public("canvas/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    soup = BeautifulSoup(response.text, "html.parser")

    assert soup.html is not None
    assert soup.html["lang"] == "en"
    assert soup.find("meta", attrs={"name": "viewport"}) is not None
    assert soup.find("script") is None
    for landmark in ("header", "main", "footer"):
        assert soup.find(landmark) is not None, landmark
    skip = soup.select_one("a.skip")
    assert skip is not None
    assert skip["href"] == "#main"

    banner = soup.find("section", class_="banner")
    assert banner is not None
    assert "Major Service Outage" in banner.get_text()

    components = {
        text_of(li, ".name"): text_of(li, ".status") for li in soup.select("li.component")
    }
    assert components == {"Web app": "✕ Major outage", "Status API": "✓ Operational"}
    groups = [h.get_text(" ", strip=True) for h in soup.select("section.group h3")]
    assert groups == ["Hosting Major outage"]

    incidents = soup.find("section", attrs={"aria-labelledby": "incidents-heading"})
    assert incidents is not None
    text = incidents.get_text(" ", strip=True)
    assert "Web app unavailable" in text
    assert "A failed <b>database</b> upgrade; rolling back." in text  # escaped, shown as typed
    assert "Expected resolution" in text
    assert "HTTP 502 Bad Gateway" in text
    assert soup.find("b") is None

    bars = soup.select("li.component figure.uptime svg")
    assert len(bars) == 2
    for svg in bars:
        assert svg["role"] == "img"
        assert "uptime over the last 90 days" in svg["aria-label"]
        rects = svg.find_all("rect")
        assert len(rects) == 90
        assert all(text_of(rect, "title") for rect in rects)
    history = soup.find("section", attrs={"aria-labelledby": "history-heading"})
    assert history is not None
    assert len(history.find_all("h3")) == 3

    css = await statuspage.public("canvas/style.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


async def test_feeds_list_incidents_with_their_notices(statuspage: StatusPages) -> None:
    await _outage(statuspage)
    atom = await statuspage.public("canvas/history.atom")
    assert atom.headers["content-type"] == "application/atom+xml"
    feed = BeautifulSoup(atom.content, "xml")
    (entry,) = feed.find_all("entry")
    assert text_of(entry, "title") == "Web app unavailable"
    content = text_of(entry, "content")
    assert "rolling back" in content
    assert "Identified" in content

    rss = await statuspage.public("canvas/history.rss")
    assert rss.headers["content-type"] == "application/rss+xml"
    channel = BeautifulSoup(rss.content, "xml").find("channel")
    assert channel is not None
    (item,) = channel.find_all("item")
    assert text_of(item, "title") == "Web app unavailable"
    assert "rolling back" in text_of(item, "description")


async def test_uptime_bars_give_each_days_downtime(statuspage: StatusPages) -> None:
    await statuspage.page()
    web = await statuspage.component()
    yesterday = datetime.now(UTC).replace(hour=10, minute=0) - timedelta(days=1)
    async with statuspage.runtime.sessions() as session:
        await session.execute(
            insert(component_status_span).values(
                component_id=uuid.UUID(web["id"]),
                status="major_outage",
                started_at=yesterday,
                ended_at=yesterday + timedelta(minutes=90),
            )
        )
        await session.execute(update(component).values(created_at=yesterday - timedelta(days=3)))
        await session.commit()
    response = await statuspage.client.put(
        f"/v1/pages/canvas/components/{web['id']}/manual-status",
        json={"status": "operational"},
        headers=statuspage.auth(),
    )
    assert response.status_code == 204
    soup = BeautifulSoup((await statuspage.public("canvas/")).text, "html.parser")
    rects = soup.select("li.component svg rect")
    day = rects[-2]
    assert day["class"] == ["major"]
    label = yesterday.strftime("%b %d, %Y")
    assert text_of(day, "title") == f"{label}: 1 h 30 min major outage"
    assert text_of(rects[-5], "title").endswith("no downtime")
    assert text_of(rects[0], "title").endswith("no data")
    caption = text_of(soup, "li.component figcaption")
    observed_s = (datetime.now(UTC) - (yesterday - timedelta(days=3))).total_seconds()
    expected = 100 * (1 - 90 * 60 / observed_s)
    shown, _, rest = caption.partition(" ")
    assert rest == "% uptime over the last 90 days"
    assert abs(float(shown) - expected) < 0.02
