"""Monitor use cases: validate, create, read, list, replace, pause, resume, delete.

None of them commits: the route owns the transaction.
"""

import secrets
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import any_, delete, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.models import check_state, monitor
from monitor.schemas import MonitorPage, MonitorRead, MonitorSpec, RegionState
from monitor.settings import Settings
from servicekit.outgoing import OutgoingPolicy, check_host, check_url
from servicekit.problems import Conflict, NotFound, Unprocessable
from servicekit.tables import catalogue_product

TARGET_FIELDS = (
    "url",
    "method",
    "headers",
    "body",
    "expected_status",
    "keyword",
    "keyword_absent",
    "degraded_ms",
    "follow_redirects",
    "verify_tls",
    "cert_warn_days",
    "host",
    "port",
    "period_s",
    "grace_s",
)
"""Spec fields kept in `monitor.target` (JSON) rather than in columns of their own."""


class MonitorNotFound(NotFound):
    """No monitor has that id."""

    title = "Monitor not found"


def policy(settings: Settings) -> OutgoingPolicy:
    """The outgoing policy of checks under `settings`."""
    return OutgoingPolicy.of(
        settings.outgoing_allow,
        timeout_s=settings.default_timeout_s,
        max_redirects=settings.max_redirects,
        max_response_bytes=settings.max_response_bytes,
    )


class Validator:
    """Checks specs against settings, the product catalogue and the address guard; caches
    what it looked up, so an apply of thousands resolves each host and product once."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.policy = policy(settings)
        self._products: dict[str, bool] | None = None
        self._hosts: dict[tuple[str, int], str | None] = {}

    async def product_known(self, slug: str) -> bool:
        """True if `slug` is an active product of the catalogue's read model."""
        if self._products is None:
            rows = await self.session.execute(
                select(catalogue_product.c.slug, catalogue_product.c.active)
            )
            self._products = {slug: active for slug, active in rows}
        return self._products.get(slug, False)

    async def check(self, spec: MonitorSpec, where: str = "") -> None:
        """Raise `Unprocessable` (field and reason) for a spec that cannot be monitored."""
        s = self.settings
        if spec.kind != "heartbeat":
            interval = spec.interval_s or s.default_interval_s
            if interval < s.min_interval_s:
                raise Unprocessable(
                    f"{where}interval_s", f"must be at least {s.min_interval_s:g} s"
                )
            recheck = spec.recheck_s or min(s.default_recheck_s, interval)
            if recheck < min(s.min_interval_s, interval) / 10:
                raise Unprocessable(f"{where}recheck_s", "is too short")
        if not await self.product_known(spec.product):
            raise Unprocessable(
                f"{where}product", f"no active product {spec.product!r} in the catalogue"
            )
        if spec.kind == "http":
            assert spec.url is not None
            reason = url_shape(spec.url)
            if reason is None:
                url = httpx.URL(spec.url)
                port = url.port or (443 if url.scheme == "https" else 80)
                key = (url.host, port)
                if key not in self._hosts:
                    self._hosts[key] = await check_url(spec.url, self.policy)
                reason = self._hosts[key]
            if reason is not None:
                raise Unprocessable(f"{where}url", reason)
        elif spec.kind == "tcp":
            assert spec.host is not None
            assert spec.port is not None
            key = (spec.host, spec.port)
            if key not in self._hosts:
                self._hosts[key] = await check_host(spec.host, spec.port, self.policy)
            if self._hosts[key] is not None:
                raise Unprocessable(f"{where}host", str(self._hosts[key]))


def keep_kind(current_kind: str, spec: MonitorSpec, where: str = "") -> None:
    """Refuse to turn a monitor into another kind: its per-region check states and
    history belong to the kind it was made as (delete it and create a new one)."""
    if spec.kind != current_kind:
        raise Unprocessable(
            f"{where}kind",
            f"cannot change from {current_kind!r} to {spec.kind!r}; "
            "delete the monitor and create a new one",
        )


def url_shape(url: str) -> str | None:
    """Why `url` is not an http(s) URL with a host (None if it is)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        return f"is not a valid URL: {exc}"
    if parsed.scheme not in ("http", "https"):
        return "must be an http or https URL"
    if not parsed.host:
        return "has no host"
    return None


def columns(spec: MonitorSpec, settings: Settings) -> dict[str, Any]:
    """The monitor row's values for `spec` (defaults filled from settings)."""
    data = spec.model_dump()
    target = {k: data[k] for k in TARGET_FIELDS if data[k] is not None}
    interval = spec.interval_s or settings.default_interval_s
    if spec.kind == "heartbeat":
        interval = float(spec.period_s or interval)
    return {
        "name": spec.name,
        "product": spec.product,
        "component": spec.component,
        "kind": spec.kind,
        "target": target,
        "interval_s": interval,
        "timeout_s": min(spec.timeout_s or settings.default_timeout_s, interval),
        "recheck_s": spec.recheck_s or min(settings.default_recheck_s, interval),
        "failures_to_down": spec.failures_to_down or settings.default_failures_to_down,
        "successes_to_up": spec.successes_to_up or settings.default_successes_to_up,
        "regions": sorted(set(spec.regions)),
        "tags": sorted(set(spec.tags)),
        "paused": spec.paused,
    }


def to_read(row: Any, regions: Iterable[Any] = ()) -> MonitorRead:
    """The API view of a monitor row."""
    data = dict(row._mapping)
    data.update(data.pop("target"))
    if data["paused"]:
        data["state"] = "paused"
    return MonitorRead.model_validate(
        {
            **data,
            "region_states": [
                RegionState(
                    region=r.region,
                    state=r.state,
                    last_checked_at=r.last_checked_at,
                    last_error=r.last_error,
                    due_at=r.due_at,
                )
                for r in regions
            ],
        }
    )


async def schedule_now(
    session: AsyncSession, monitor_ids: list[uuid.UUID], spread_s: float
) -> list[Any]:
    """Give new (or resumed) monitors a due check in every live region, within `spread_s`;
    returns the check states made."""
    if not monitor_ids:
        return []
    result = await session.execute(
        text(
            """
            INSERT INTO check_state (monitor_id, region, due_at)
            SELECT m.id, r.region,
                CASE WHEN m.kind = 'heartbeat'
                     THEN now() + make_interval(secs => (m.target->>'period_s')::float
                                                 + coalesce((m.target->>'grace_s')::float, 0))
                     ELSE now() + random() * :spread * interval '1 second' END
            FROM monitor m
            CROSS JOIN (SELECT DISTINCT region FROM replica UNION SELECT '_') r
            WHERE m.id = ANY(:ids) AND NOT m.paused
              AND ((m.kind = 'heartbeat') = (r.region = '_'))
              AND (cardinality(m.regions) = 0 OR r.region = ANY(m.regions) OR r.region = '_')
            ON CONFLICT DO NOTHING
            RETURNING *
            """
        ),
        {"ids": monitor_ids, "spread": spread_s},
    )
    return list(result)


async def create(session: AsyncSession, spec: MonitorSpec, settings: Settings) -> MonitorRead:
    """Store a new monitor and schedule its first checks at once."""
    await Validator(session, settings).check(spec)
    monitor_id = uuid.uuid4()
    values = columns(spec, settings)
    if spec.kind == "heartbeat":
        values["heartbeat_token"] = secrets.token_urlsafe(24)
    if spec.paused:
        values["state"] = "paused"
    row = (
        await session.execute(
            insert(monitor)
            .values(id=monitor_id, **values)
            .on_conflict_do_nothing(index_elements=[monitor.c.name])
            .returning(*monitor.c)
        )
    ).first()
    if row is None:
        taken = await session.scalar(select(monitor.c.id).where(monitor.c.name == spec.name))
        raise Conflict(f"a monitor named {spec.name!r} exists", existing_id=str(taken))
    regions = await schedule_now(session, [monitor_id], 0.0)
    return to_read(row, sorted(regions, key=lambda r: r.region))


async def get(session: AsyncSession, monitor_id: uuid.UUID) -> MonitorRead:
    """One monitor with its regions' states."""
    row = (await session.execute(select(monitor).where(monitor.c.id == monitor_id))).first()
    if row is None:
        raise MonitorNotFound(f"no monitor {monitor_id}")
    regions = await session.execute(
        select(check_state)
        .where(check_state.c.monitor_id == monitor_id)
        .order_by(check_state.c.region)
    )
    return to_read(row, regions)


async def list_page(
    session: AsyncSession,
    *,
    limit: int,
    after: str | None,
    product: str | None,
    tag: str | None,
    state: str | None,
) -> MonitorPage:
    """A page of monitors by name, filtered."""
    query = select(monitor).order_by(monitor.c.name).limit(limit + 1)
    if after:
        query = query.where(monitor.c.name > after)
    if product:
        query = query.where(monitor.c.product == product)
    if tag:
        query = query.where(literal(tag) == any_(monitor.c.tags))
    if state == "paused":
        query = query.where(monitor.c.paused)
    elif state:
        query = query.where(monitor.c.state == state, ~monitor.c.paused)
    rows = (await session.execute(query)).all()
    items = [to_read(row) for row in rows[:limit]]
    return MonitorPage(items=items, next_after=items[-1].name if len(rows) > limit else None)


async def replace(
    session: AsyncSession, monitor_id: uuid.UUID, spec: MonitorSpec, settings: Settings
) -> MonitorRead:
    """Replace a monitor's definition; its state and history are kept."""
    await Validator(session, settings).check(spec)
    current = (
        await session.execute(select(monitor).where(monitor.c.id == monitor_id).with_for_update())
    ).first()
    if current is None:
        raise MonitorNotFound(f"no monitor {monitor_id}")
    keep_kind(current.kind, spec)
    clash = await session.scalar(
        select(monitor.c.id).where(monitor.c.name == spec.name, monitor.c.id != monitor_id)
    )
    if clash is not None:
        raise Conflict(f"a monitor named {spec.name!r} exists", existing_id=str(clash))
    values = columns(spec, settings)
    await apply_changes(session, [(monitor_id, current, values)], settings)
    return await get(session, monitor_id)


async def drop_unlisted_regions(
    session: AsyncSession, monitor_id: uuid.UUID, before: list[str], after: list[str]
) -> None:
    """When a monitor's region list changes, drop the check states of regions no longer
    listed (an empty list means every live region: replicas add theirs)."""
    if after and after != before:
        await session.execute(
            delete(check_state).where(
                check_state.c.monitor_id == monitor_id,
                check_state.c.region != "_",
                check_state.c.region.not_in(after),
            )
        )


async def apply_changes(
    session: AsyncSession,
    changes: list[tuple[uuid.UUID, Any, dict[str, Any]]],
    settings: Settings,
) -> None:
    """Write new definitions; pausing drops due checks, resuming schedules them."""
    now = datetime.now(UTC)
    resumed: list[uuid.UUID] = []
    paused: list[uuid.UUID] = []
    for monitor_id, current, values in changes:
        extra: dict[str, Any] = {"updated_at": now}
        if values["paused"] and not current.paused:
            paused.append(monitor_id)
            extra.update(state="paused", state_changed_at=now)
        elif not values["paused"] and current.paused:
            resumed.append(monitor_id)
            extra.update(state="pending", state_changed_at=now, first_failure_at=None)
        if values["kind"] == "heartbeat" and current.heartbeat_token is None:
            extra["heartbeat_token"] = secrets.token_urlsafe(24)
        await session.execute(
            update(monitor).where(monitor.c.id == monitor_id).values(**values, **extra)
        )
        await drop_unlisted_regions(session, monitor_id, list(current.regions), values["regions"])
    if paused:
        await session.execute(delete(check_state).where(check_state.c.monitor_id.in_(paused)))
    await schedule_now(session, resumed, 0.0)


async def set_paused(
    session: AsyncSession, monitor_id: uuid.UUID, paused: bool, settings: Settings
) -> MonitorRead:
    """Pause or resume a monitor (a paused one is not checked and publishes nothing)."""
    current = (
        await session.execute(select(monitor).where(monitor.c.id == monitor_id).with_for_update())
    ).first()
    if current is None:
        raise MonitorNotFound(f"no monitor {monitor_id}")
    values = {
        "name": current.name,
        "kind": current.kind,
        "regions": list(current.regions),
        "paused": paused,
    }
    await apply_changes(session, [(monitor_id, current, values)], settings)
    return await get(session, monitor_id)


async def remove(session: AsyncSession, monitor_id: uuid.UUID) -> None:
    """Delete a monitor, its due checks with it."""
    deleted = await session.scalar(
        delete(monitor).where(monitor.c.id == monitor_id).returning(monitor.c.id)
    )
    if deleted is None:
        raise MonitorNotFound(f"no monitor {monitor_id}")


async def count(session: AsyncSession) -> int:
    """How many monitors exist."""
    return int(await session.scalar(select(func.count()).select_from(monitor)) or 0)
