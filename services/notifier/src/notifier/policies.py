"""Escalation policies: the use cases of their CRUD API. Each runs in the route's
transaction and never commits. Pages copy a policy when they open, so an edit here never
changes a running escalation."""

import uuid
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from notifier import schemas
from notifier.models import escalation_policy, person, schedule
from servicekit.problems import Conflict, NotFound, Unprocessable


async def list_policy_rows(session: AsyncSession) -> list[Row[Any]]:
    """Every policy's row: the default last."""
    query = select(escalation_policy).order_by(
        escalation_policy.c.is_default, escalation_policy.c.name
    )
    return list((await session.execute(query)).all())


async def get_policy_row(session: AsyncSession, policy_id: uuid.UUID) -> Row[Any]:
    """A policy's row; 404 if unknown."""
    row = (
        await session.execute(select(escalation_policy).where(escalation_policy.c.id == policy_id))
    ).first()
    if row is None:
        raise NotFound(f"no escalation policy {policy_id}")
    return row


async def _policy_values(session: AsyncSession, data: schemas.PolicyCreate) -> dict[str, Any]:
    for index, level in enumerate(data.levels):
        table = person if level.target_type == "person" else schedule
        if await session.scalar(select(table.c.id).where(table.c.id == level.target_id)) is None:
            raise Unprocessable(
                f"levels.{index}.target_id", f"unknown {level.target_type} {level.target_id}"
            )
    if data.is_default and data.product_slug:
        raise Unprocessable("is_default", "the default policy is for no product in particular")
    if not data.is_default and not data.product_slug:
        raise Unprocessable("product_slug", "name a product, or make the policy the default")
    return {
        "name": data.name,
        "product_slug": data.product_slug,
        "is_default": data.is_default,
        "repeat": data.repeat,
        "levels": [level.model_dump(mode="json") for level in data.levels],
    }


async def _write_policy(session: AsyncSession, stmt: Any) -> None:
    try:
        async with session.begin_nested():
            await session.execute(stmt)
    except IntegrityError as exc:
        raise Conflict("a policy for that product (or a default policy) already exists") from exc


async def create_policy(session: AsyncSession, data: schemas.PolicyCreate) -> Row[Any]:
    """Add an escalation policy."""
    policy_id = uuid.uuid4()
    values = await _policy_values(session, data)
    await _write_policy(session, insert(escalation_policy).values(id=policy_id, **values))
    return await get_policy_row(session, policy_id)


async def replace_policy(
    session: AsyncSession, policy_id: uuid.UUID, data: schemas.PolicyCreate
) -> Row[Any]:
    """Replace a policy; pages already open keep the copy they took."""
    await get_policy_row(session, policy_id)
    values = await _policy_values(session, data)
    await _write_policy(
        session,
        update(escalation_policy).where(escalation_policy.c.id == policy_id).values(**values),
    )
    return await get_policy_row(session, policy_id)


async def delete_policy(session: AsyncSession, policy_id: uuid.UUID) -> None:
    """Remove a policy (open pages keep their copy)."""
    await get_policy_row(session, policy_id)
    await session.execute(delete(escalation_policy).where(escalation_policy.c.id == policy_id))


def read_policy(row: Row[Any]) -> schemas.PolicyRead:
    """A policy row as the API shows it."""
    return schemas.PolicyRead.model_validate(row._asdict())
