"""Patch-window and verification-run use cases (the route owns the transaction)."""

import csv
import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.models import patch_window, verification_run
from monitor.monitors import Validator
from monitor.schemas import PatchWindowRead, PatchWindowSpec, VerificationRunRead
from monitor.settings import Settings
from monitor.windows import forget_window, next_occurrence, schedule_close, validate_window
from servicekit.problems import Conflict, NotFound, Unprocessable


class PatchWindowNotFound(NotFound):
    """No patch window has that id."""

    title = "Patch window not found"


def to_read(row: Any) -> PatchWindowRead:
    """The API view of a window, with its next occurrence."""
    upcoming = next_occurrence(row, datetime.now(UTC))
    return PatchWindowRead.model_validate(
        {
            **row._mapping,
            "next_starts_at": upcoming[0] if upcoming else None,
            "next_ends_at": upcoming[1] if upcoming else None,
        }
    )


async def create(
    session: AsyncSession, spec: PatchWindowSpec, settings: Settings
) -> PatchWindowRead:
    """Store a window and set the timer that judges its next occurrence."""
    validate_window(spec)
    validator = Validator(session, settings)
    for i, slug in enumerate(spec.products):
        if not await validator.product_known(slug):
            raise Unprocessable(f"products[{i}]", f"no active product {slug!r} in the catalogue")
    if await session.scalar(select(patch_window.c.id).where(patch_window.c.name == spec.name)):
        raise Conflict(f"a patch window named {spec.name!r} exists")
    window_id = uuid.uuid4()
    await session.execute(patch_window.insert().values(id=window_id, **spec.model_dump()))
    row = (await session.execute(select(patch_window).where(patch_window.c.id == window_id))).one()
    await schedule_close(session, row, settings.verification_settle_s)
    return to_read(row)


async def list_all(session: AsyncSession) -> list[PatchWindowRead]:
    """Every window by name."""
    rows = await session.execute(select(patch_window).order_by(patch_window.c.name))
    return [to_read(row) for row in rows]


async def get(session: AsyncSession, window_id: uuid.UUID) -> PatchWindowRead:
    """One window."""
    row = (
        await session.execute(select(patch_window).where(patch_window.c.id == window_id))
    ).first()
    if row is None:
        raise PatchWindowNotFound(f"no patch window {window_id}")
    return to_read(row)


async def remove(session: AsyncSession, window_id: uuid.UUID) -> None:
    """Delete a window and its pending judgement (past runs are kept for the audit)."""
    deleted = await session.scalar(
        delete(patch_window).where(patch_window.c.id == window_id).returning(patch_window.c.id)
    )
    if deleted is None:
        raise PatchWindowNotFound(f"no patch window {window_id}")
    await forget_window(session, window_id)


async def runs(
    session: AsyncSession, *, limit: int, before: datetime | None, product: str | None
) -> list[VerificationRunRead]:
    """Verification runs, newest first."""
    query = select(verification_run).order_by(verification_run.c.decided_at.desc()).limit(limit)
    if before is not None:
        query = query.where(verification_run.c.decided_at < before)
    if product:
        query = query.where(verification_run.c.product == product)
    return [
        VerificationRunRead.model_validate(dict(r._mapping)) for r in await session.execute(query)
    ]


CSV_FIELDS = (
    "id",
    "window_name",
    "product",
    "starts_at",
    "ends_at",
    "outcome",
    "decided_at",
    "failed_checks",
    "first_failed_at",
    "evidence",
)


def runs_csv(items: list[VerificationRunRead]) -> str:
    """Verification runs as CSV, one row per run, the evidence as JSON in its last column."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for run in items:
        writer.writerow(
            [
                run.id,
                run.window_name,
                run.product,
                run.starts_at.isoformat(),
                run.ends_at.isoformat(),
                run.outcome,
                run.decided_at.isoformat(),
                len(run.evidence),
                run.evidence[0]["at"] if run.evidence else "",
                json.dumps(run.evidence, separators=(",", ":")),
            ]
        )
    return out.getvalue()
