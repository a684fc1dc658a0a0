"""Intake owns the product catalogue and tells every other service about each change."""

import asyncio
import uuid

from sqlalchemy import select

from contracts import Envelope, parse_payload
from contracts.products import CatalogueRequested, ProductChanged
from intake.models import product
from intake.products import update_product
from intake.schemas import ProductUpdate
from tests.harness import wait_connected
from tests.intake.helpers import Intake, inject, listening, next_event

SEEDED = {"canvas-hosting", "atomic-apps"}


async def _envelopes(queue: "asyncio.Queue[Envelope]", count: int) -> list[Envelope]:
    return [await next_event(queue, ProductChanged.event_type) for _ in range(count)]


async def _changed(queue: "asyncio.Queue[Envelope]", count: int) -> list[ProductChanged]:
    found = []
    for envelope in await _envelopes(queue, count):
        payload = parse_payload(envelope)
        assert isinstance(payload, ProductChanged)
        found.append(payload)
    return found


async def test_registering_renaming_and_retiring_a_product_each_publish_product_changed(
    intake: Intake,
) -> None:
    admin = intake.auth(intake.admin_key)
    async with listening(intake.env, ProductChanged.event_type) as queue:
        created = await intake.client.post(
            "/v1/products", json={"slug": "mail-relay", "name": "Mail Relay"}, headers=admin
        )
        assert created.status_code == 201
        renamed = await intake.client.patch(
            "/v1/products/mail-relay", json={"name": "Mail Relay EU"}, headers=admin
        )
        assert renamed.status_code == 200
        retired = await intake.client.delete("/v1/products/mail-relay", headers=admin)
        assert retired.status_code == 204
        events = await _changed(queue, 3)
    assert [(e.slug, e.name, e.active) for e in events] == [
        ("mail-relay", "Mail Relay", True),
        ("mail-relay", "Mail Relay EU", True),
        ("mail-relay", "Mail Relay EU", False),
    ]
    assert events[0].changed_at <= events[1].changed_at <= events[2].changed_at


async def test_of_two_racing_updates_the_one_committed_last_is_the_newest(
    intake: Intake,
) -> None:
    """The update that started first but committed last is what read models must keep."""
    sessions = intake.runtime.sessions
    changed_at = select(product.c.updated_at).where(product.c.slug == "atomic-apps")
    async with sessions() as first, sessions() as second:
        await first.execute(select(1))  # the first transaction starts here
        await asyncio.sleep(0.01)
        await update_product(
            session=second, slug="atomic-apps", data=ProductUpdate(name="Atomic Apps EU")
        )
        await second.commit()
        renamed_at = await second.scalar(changed_at)
        await update_product(session=first, slug="atomic-apps", data=ProductUpdate(active=False))
        await first.commit()
        retired_at = await first.scalar(changed_at)
    assert retired_at is not None
    assert renamed_at is not None
    assert retired_at > renamed_at


async def test_a_refused_product_change_publishes_nothing(intake: Intake) -> None:
    admin = intake.auth(intake.admin_key)
    async with listening(intake.env, ProductChanged.event_type) as queue:
        taken = await intake.client.post(
            "/v1/products", json={"slug": "canvas-hosting", "name": "Again"}, headers=admin
        )
        assert taken.status_code == 409
        missing = await intake.client.patch(
            "/v1/products/nothing-here", json={"name": "X"}, headers=admin
        )
        assert missing.status_code == 404
        marker = await intake.client.post(
            "/v1/products", json={"slug": "marker", "name": "Marker"}, headers=admin
        )
        assert marker.status_code == 201
        (first,) = await _changed(queue, 1)
    assert first.slug == "marker"  # nothing was published before it


async def test_a_catalogue_request_republishes_every_product_retired_ones_too(
    intake: Intake,
) -> None:
    await wait_connected(intake.runtime)
    admin = intake.auth(intake.admin_key)
    await intake.client.post("/v1/products", json={"slug": "old", "name": "Old"}, headers=admin)
    await intake.client.delete("/v1/products/old", headers=admin)
    async with listening(intake.env, ProductChanged.event_type) as queue:
        request = CatalogueRequested(request_id=uuid.uuid4(), requested_by="monitor")
        asked = await inject(intake.env, request, producer="monitor")
        products = await intake.client.get(
            "/v1/products?include_inactive=true", headers=intake.auth(intake.reader_key)
        )
        expected = {(p["slug"], p["name"], p["active"]) for p in products.json()}
        assert {"old", *SEEDED} <= {slug for slug, _, _ in expected}
        envelopes = await _envelopes(queue, len(expected))
    events = [parse_payload(e) for e in envelopes]
    assert {(e.slug, e.name, e.active) for e in events if isinstance(e, ProductChanged)} == expected
    assert {e.causation_id for e in envelopes} == {asked.id}
