"""API-key use cases over servicekit's ``api_key`` table."""

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from intake.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from servicekit.auth import create_api_key, revoke_api_key
from servicekit.tables import api_key

_COLUMNS = (
    api_key.c.id,
    api_key.c.name,
    api_key.c.prefix,
    api_key.c.scopes,
    api_key.c.created_at,
    api_key.c.last_used_at,
    api_key.c.revoked_at,
)


async def create_key(*, session: AsyncSession, data: ApiKeyCreate) -> ApiKeyCreated:
    """Create a key; its secret is in the result and nowhere else."""
    new = await create_api_key(session, name=data.name, scopes=list(data.scopes))
    row = (await session.execute(select(*_COLUMNS).where(api_key.c.id == new.id))).one()
    return ApiKeyCreated(**row._mapping, key=new.secret)


async def list_keys(*, session: AsyncSession) -> list[ApiKeyRead]:
    """Every key, newest first, without secrets."""
    rows = await session.execute(select(*_COLUMNS).order_by(api_key.c.created_at.desc()))
    return [ApiKeyRead(**row._mapping) for row in rows]


async def revoke_key(*, session: AsyncSession, key_id: uuid.UUID) -> None:
    """Revoke a key; requests with it are refused from now on."""
    await revoke_api_key(session, key_id=key_id)
