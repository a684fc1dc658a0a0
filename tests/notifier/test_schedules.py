"""Who is on call: rotations across DST changes, layers with restrictions, overrides, the
iCal feeds and the warnings."""

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar

from contracts import Envelope
from contracts.products import ProductChanged
from notifier import timeline
from notifier.rotation import Layer, Override, Restriction, Schedule
from servicekit.catalogue import on_product_changed
from tests.notifier.helpers import Notifier

BERLIN = ZoneInfo("Europe/Berlin")
A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_daily_handoff_stays_at_nine_local_across_both_dst_changes() -> None:
    layer = Layer(datetime(2026, 3, 1, 9, 0), "days", 1, (A, B))
    schedule = Schedule(BERLIN, (layer,))
    # 2026-03-29: clocks go forward; 09:00 is 08:00 UTC before it, 07:00 UTC from it.
    assert schedule.oncall_at(utc(2026, 3, 28, 7, 59)) == schedule.oncall_at(utc(2026, 3, 27, 9))
    before = schedule.oncall_at(utc(2026, 3, 29, 6, 59))
    after = schedule.oncall_at(utc(2026, 3, 29, 7, 0))
    assert before != after
    # 2026-10-25: clocks go back; 09:00 is 08:00 UTC from that day.
    assert schedule.oncall_at(utc(2026, 10, 25, 7, 59)) != schedule.oncall_at(utc(2026, 10, 25, 8))
    shifts = schedule.shifts(utc(2026, 3, 28), utc(2026, 3, 31))
    handoffs = [s.starts_at for s in shifts[1:]]
    assert handoffs == [utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)]
    assert shifts[1].ends_at - shifts[1].starts_at == timedelta(hours=23)


def test_hourly_shifts_are_real_hours_across_dst() -> None:
    layer = Layer(datetime(2026, 3, 28, 21, 0), "hours", 12, (A, B))
    schedule = Schedule(BERLIN, (layer,))
    # Started 20:00 UTC on the 28th: 12 real hours each, whatever the clocks do.
    assert schedule.oncall_at(utc(2026, 3, 28, 20)) == A
    assert schedule.oncall_at(utc(2026, 3, 29, 7, 59)) == A
    assert schedule.oncall_at(utc(2026, 3, 29, 8)) == B
    assert schedule.oncall_at(utc(2026, 3, 29, 20)) == A


def test_a_restricted_layer_covers_business_hours_and_overrides_cover_all() -> None:
    base = Layer(datetime(2026, 1, 5, 0, 0), "weeks", 1, (A,))
    weekdays = Restriction(frozenset(range(5)), time(9), time(17))
    office = Layer(datetime(2026, 1, 5, 9, 0), "weeks", 1, (B,), (weekdays,))
    override = Override(C, utc(2026, 3, 28, 22), utc(2026, 3, 29, 10))  # across the change
    schedule = Schedule(BERLIN, (base, office), (override,))
    assert schedule.oncall_at(utc(2026, 3, 26, 10)) == B  # Thursday 11:00 Berlin
    assert schedule.oncall_at(utc(2026, 3, 26, 17)) == A  # Thursday 18:00 Berlin
    assert schedule.oncall_at(utc(2026, 3, 28, 10)) == A  # Saturday
    assert schedule.oncall_at(utc(2026, 3, 29, 1, 30)) == C  # the hour that does not exist
    assert schedule.oncall_at(utc(2026, 3, 29, 10)) == A
    assert schedule.oncall_at(utc(2026, 3, 30, 7)) == B  # Monday 09:00 CEST


def test_overnight_restriction_runs_past_midnight() -> None:
    nights = Restriction(frozenset({4}), time(22), time(6))  # Friday 22:00 to Saturday 06:00
    schedule = Schedule(ZoneInfo("UTC"), (Layer(datetime(2026, 1, 1), "days", 1, (A,), (nights,)),))
    assert schedule.oncall_at(utc(2026, 3, 27, 23)) == A
    assert schedule.oncall_at(utc(2026, 3, 28, 5)) == A
    assert schedule.oncall_at(utc(2026, 3, 28, 7)) is None


async def test_oncall_api_answers_across_a_dst_handoff_with_an_override(service: Notifier) -> None:
    alice = await service.person("Alice", "alice@ops.example", time_zone="Europe/Berlin")
    bob = await service.person("Bob", "bob@ops.example")
    carol = await service.person("Carol", "carol@ops.example")
    schedule = await service.weekly_schedule(
        alice, bob, zone="Europe/Berlin", rotation_start="2026-03-01T09:00:00", shift_unit="days"
    )

    async def who(at: str) -> str | None:
        body = await service.get("/v1/oncall", schedule=schedule, at=at)
        return body["person"]["name"] if body["person"] else None

    assert await who("2026-03-29T06:59:00Z") != await who("2026-03-29T07:00:00Z")
    override = {
        "person_id": carol,
        "starts_at": "2026-03-29T00:00:00Z",
        "ends_at": "2026-03-29T12:00:00Z",
    }
    await service.post(f"/v1/schedules/{schedule}/overrides", override)
    assert await who("2026-03-29T06:59:00Z") == "Carol"
    assert await who("2026-03-29T11:59:00Z") == "Carol"
    assert await who("2026-03-29T12:00:00Z") in {"Alice", "Bob"}

    overlap = {
        "person_id": bob,
        "starts_at": "2026-03-29T11:00:00Z",
        "ends_at": "2026-03-29T13:00:00Z",
    }
    refused = await service.client.post(
        f"/v1/schedules/{schedule}/overrides", json=overlap, headers=service.auth
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "starts_at"


async def test_ical_feeds_and_gap_warnings(service: Notifier) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    silent = await service.person("Silent", "silent@ops.example", rules=[{"channel": "sms"}])
    weekdays = [{"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}]
    schedule = await service.weekly_schedule(alice, silent, restrictions=weekdays)
    read = await service.get(f"/v1/schedules/{schedule}")
    feed = await service.client.get(read["ical_url"].removeprefix("http://notifier"))
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("text/calendar")
    events = [c for c in Calendar.from_ical(feed.content).walk("VEVENT")]
    assert any("Alice" in str(e["SUMMARY"]) for e in events)
    assert any("Nobody on call" in str(e["SUMMARY"]) for e in events)
    person = await service.get(f"/v1/people/{alice}")
    mine = await service.client.get(person["ical_url"].removeprefix("http://notifier"))
    assert mine.status_code == 200
    assert all(
        "DevOps" in str(e["SUMMARY"]) for e in Calendar.from_ical(mine.content).walk("VEVENT")
    )
    assert (await service.client.get("/v1/ical/schedules/guess.ics")).status_code == 404

    warnings = (await service.get("/v1/warnings"))["warnings"]
    assert any("nobody on call" in w for w in warnings)
    assert any("Silent has no usable contact method" in w for w in warnings)
    health = await service.client.get("/health")
    assert "oncall_warnings" in health.text


async def test_shifts_are_listed_and_a_bad_window_is_a_422(service: Notifier) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    bob = await service.person("Bob", "bob@ops.example")
    schedule = await service.weekly_schedule(alice, bob, shift_unit="days")
    shifts = await service.get(
        f"/v1/schedules/{schedule}/shifts", start="2026-03-01T00:00:00Z", end="2026-03-04T00:00:00Z"
    )
    assert [s["person_name"] for s in shifts] == ["Alice", "Bob", "Alice", "Bob"]
    bad = await service.client.get(
        f"/v1/schedules/{schedule}/shifts",
        params={"start": "2026-03-04T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
        headers=service.auth,
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "end"


async def test_a_missing_escalation_policy_is_a_warning(service: Notifier) -> None:
    """Until a default policy exists, an outage of a product without a policy of its own
    pages nobody: the warnings (and /health) say so."""
    warnings = (await service.get("/v1/warnings"))["warnings"]
    assert "there is no escalation policy: an outage pages nobody" in warnings
    alice = await service.person("Alice", "alice@ops.example")
    await service.policy(("person", alice, 60), product="billing")
    warnings = (await service.get("/v1/warnings"))["warnings"]
    assert not any("escalation policy" in w for w in warnings)  # no other product is known
    changed = ProductChanged(slug="canvas", name="Canvas", active=True, changed_at=timeline.now())
    async with service.runtime.sessions() as session, session.begin():
        await on_product_changed(session, changed, Envelope.wrap(changed, producer="intake"))
    warnings = (await service.get("/v1/warnings"))["warnings"]
    assert "there is no default escalation policy: an outage of canvas pages nobody" in warnings
    assert not any("billing" in w for w in warnings)
    await service.policy(("person", alice, 60))
    assert not any(
        "escalation policy" in w for w in (await service.get("/v1/warnings"))["warnings"]
    )
