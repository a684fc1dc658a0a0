"""Each service's role owns its schema and can touch nothing else."""

import asyncpg
import pytest

from servicekit.db import asyncpg_dsn
from tests.harness import Throwaway
from tests.servicekit.helpers import MIGRATIONS, prepared


async def test_migrations_keep_their_version_table_in_the_service_schema(env: Throwaway) -> None:
    settings = await prepared(env)
    conn = await asyncpg.connect(asyncpg_dsn(env.database_url))
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name, tableowner FROM information_schema.tables"
            " JOIN pg_tables ON schemaname = table_schema AND tablename = table_name"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
    finally:
        await conn.close()
    found = {(row["table_schema"], row["table_name"]) for row in tables}
    assert ("svc", "alembic_version") in found
    assert ("svc", "outbox_event") in found
    assert all(row["table_schema"] == "svc" for row in tables)
    assert {row["tableowner"] for row in tables} == {"klaxon_svc"}
    assert settings.db_schema == "svc"


async def test_a_service_role_cannot_read_another_services_schema(env: Throwaway) -> None:
    mine = await prepared(env)
    other = env.settings(type(mine), schema="other", service_name="other")
    await env.provision(other, MIGRATIONS)

    conn = await asyncpg.connect(asyncpg_dsn(mine.database_url))
    try:
        assert await conn.fetchval("SELECT count(*) FROM svc.outbox_event") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT count(*) FROM other.outbox_event")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.sneaky (id int)")
    finally:
        await conn.close()


async def test_migrating_twice_is_a_no_op(env: Throwaway) -> None:
    settings = await prepared(env)
    await env.provision(settings, MIGRATIONS)
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        versions = await conn.fetch("SELECT version_num FROM svc.alembic_version")
        # The plumbing branch's head depends on the service's 0001, which it therefore covers.
        assert sorted(row["version_num"] for row in versions) == ["p0003_outbox_retry_at"]
    finally:
        await conn.close()
