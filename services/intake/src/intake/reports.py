"""Reports over tickets: CRITICAL tickets filed while monitoring saw the product up."""

from datetime import datetime

from sqlalchemy import FunctionFilter, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import Severity
from intake.models import ticket
from intake.schemas import CriticalUsageReport, CriticalUsageRow


async def critical_usage(
    *, session: AsyncSession, created_from: datetime | None, created_to: datetime | None
) -> CriticalUsageReport:
    """Per organization: CRITICAL tickets in total and by monitoring state at filing."""

    def count_state(state: str) -> FunctionFilter[int]:
        return func.count().filter(ticket.c.monitoring_state == state)

    conditions = [ticket.c.severity == Severity.CRITICAL.value]
    if created_from:
        conditions.append(ticket.c.created_at >= created_from)
    if created_to:
        conditions.append(ticket.c.created_at < created_to)
    rows = await session.execute(
        select(
            ticket.c.organization,
            func.count().label("critical_total"),
            count_state("up").label("filed_while_up"),
            count_state("down").label("filed_while_down"),
            count_state("unknown").label("filed_while_unknown"),
        )
        .where(*conditions)
        .group_by(ticket.c.organization)
        .order_by(
            func.count().filter(ticket.c.monitoring_state == "up").desc(), ticket.c.organization
        )
    )
    return CriticalUsageReport(
        created_from=created_from,
        created_to=created_to,
        organizations=[CriticalUsageRow(**row._mapping) for row in rows],
    )
