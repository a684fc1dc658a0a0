"""TLS certificate expiry: kept on the monitor for the API, and warned about once per
certificate when it is within the monitor's ``cert_warn_days``."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.monitor import MonitorCertificateExpiring
from monitor.checks import Result
from monitor.models import monitor
from monitor.transitions import product_ref
from servicekit.outbox import publish


async def note_certificates(session: AsyncSession, checked: list[tuple[Any, Result]]) -> None:
    """Record each check's certificate expiry if it changed; warn once for one expiring soon."""
    now = datetime.now(UTC)
    for claim, result in checked:
        expires_at = result.cert_expires_at
        if expires_at is None:
            continue
        warn_days = float(claim.target.get("cert_warn_days", 14))
        days_left = (expires_at - now).total_seconds() / 86400
        warn = days_left <= warn_days and claim.cert_warned_for != expires_at
        if claim.cert_expires_at == expires_at and not warn:
            continue
        values: dict[str, Any] = {"cert_expires_at": expires_at}
        if warn:
            values["cert_warned_for"] = expires_at
        row = (
            await session.execute(
                update(monitor)
                .where(monitor.c.id == claim.monitor_id)
                .where(
                    (monitor.c.cert_warned_for.is_(None))
                    | (monitor.c.cert_warned_for != expires_at)
                    if warn
                    else monitor.c.id == claim.monitor_id
                )
                .values(**values)
                .returning(monitor.c.name, monitor.c.product, monitor.c.component)
            )
        ).first()
        if warn and row is not None:
            await publish(
                session,
                MonitorCertificateExpiring(
                    monitor_id=claim.monitor_id,
                    monitor_name=row.name,
                    product=await product_ref(session, row.product),
                    component=row.component,
                    url=claim.target["url"],
                    expires_at=expires_at,
                    days_left=round(days_left, 2),
                ),
                producer="monitor",
            )
