"""Every service's migrations build exactly the tables its models describe, once."""

import asyncio
import importlib
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.exc import ProgrammingError

from servicekit.cli import ServiceDefinition
from servicekit.db import asyncpg_dsn, create_engine
from servicekit.migrations import differences, upgrade
from servicekit.settings import ServiceSettings
from tests.harness import Throwaway, eventually

PACKAGES = ["intake", "monitor", "notifier", "statuspage_sync"]


@pytest.mark.parametrize("package", PACKAGES)
async def test_migrations_match_models(env: Throwaway, package: str) -> None:
    service: ServiceDefinition = importlib.import_module(f"{package}.__main__").SERVICE
    metadata = importlib.import_module(f"{package}.models").metadata
    defaults = service.load_settings()
    settings = env.settings(type(defaults), schema=defaults.db_schema)
    assert isinstance(settings, ServiceSettings)
    await env.provision(settings, service.migrations)
    await env.provision(settings, service.migrations)  # a second run changes nothing
    assert await differences(settings, metadata) == []

    # The comparison really reads the schema: a dropped table shows up.
    engine = create_engine(settings)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE timer")
    await engine.dispose()
    assert await differences(settings, metadata) != []


@pytest.mark.parametrize("package", PACKAGES)
async def test_a_schema_made_before_a_plumbing_change_is_upgraded_to_match(
    env: Throwaway, package: str
) -> None:
    """A schema migrated by a build without the plumbing branch (the service's own revisions
    only, as every schema was made before it existed) gets every plumbing change on its next
    upgrade, and then equals a schema made fresh."""
    service: ServiceDefinition = importlib.import_module(f"{package}.__main__").SERVICE
    metadata = importlib.import_module(f"{package}.models").metadata
    defaults = service.load_settings()
    settings = env.settings(type(defaults), schema=defaults.db_schema)
    await env.provision(settings, None)
    await upgrade(settings, service.migrations, with_plumbing=False)
    assert await differences(settings, metadata) != []  # the plumbing's later columns missing

    await upgrade(settings, service.migrations)
    assert await differences(settings, metadata) == []


ENV_PY = """
from sqlalchemy import MetaData

from servicekit.migrations import configure_from_env

configure_from_env(MetaData())
"""

SLOW_COMMIT = """
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute("CREATE TABLE applied (at timestamptz NOT NULL DEFAULT now())")
    op.execute(
        "CREATE FUNCTION linger() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE CONSTRAINT TRIGGER linger AFTER INSERT ON applied"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION linger()"
    )
    op.execute("INSERT INTO applied DEFAULT VALUES")
"""
"""A revision whose commit takes a moment (a deferred trigger runs at COMMIT), so a
migrator that stopped holding the lock before its commit finished lets the next one in
while the version it wrote is still invisible."""

BROKEN = """
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute("SELECT * FROM no_such_table")
"""


def _scripts(root: Path, revision: str) -> Path:
    (root / "versions").mkdir(parents=True)
    (root / "env.py").write_text(ENV_PY)
    (root / "versions" / "0001_only.py").write_text(revision)
    return root


async def test_concurrent_upgrades_apply_each_revision_once(env: Throwaway, tmp_path: Path) -> None:
    settings = env.settings(ServiceSettings, schema="svc", service_name="test")
    await env.provision(settings, None)
    scripts = _scripts(tmp_path, SLOW_COMMIT)
    admin = await asyncpg.connect(asyncpg_dsn(env.database_url))
    try:
        # Hold the migration lock until every replica queues behind it, so each
        # hand-over happens while the previous one is still committing.
        await admin.execute("SELECT pg_advisory_lock(hashtext('migrate:svc'))")
        replicas = [
            asyncio.create_task(upgrade(settings, scripts, with_plumbing=False)) for _ in range(3)
        ]

        async def all_queued() -> bool:
            waiting = await admin.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            return bool(waiting == len(replicas))

        await eventually(all_queued)
        await admin.execute("SELECT pg_advisory_unlock(hashtext('migrate:svc'))")
        results = await asyncio.gather(*replicas, return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert await admin.fetchval("SELECT count(*) FROM svc.applied") == 1
        assert await admin.fetchval("SELECT version_num FROM svc.alembic_version") == "0001"
    finally:
        await admin.close()


async def test_failed_migration_raises_its_own_error(env: Throwaway, tmp_path: Path) -> None:
    settings = env.settings(ServiceSettings, schema="svc", service_name="test")
    await env.provision(settings, None)
    with pytest.raises(ProgrammingError, match="no_such_table"):
        await upgrade(settings, _scripts(tmp_path, BROKEN), with_plumbing=False)
