"""Alembic, run per service with the version table inside the service's own schema.

A service keeps ``migrations/env.py`` (which calls `configure_from_env`) and
``migrations/versions/`` in its package; `upgrade` runs them to head under an
advisory lock, so replicas that start together migrate once.
"""

from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, text

from servicekit.db import create_engine
from servicekit.settings import ServiceSettings
from servicekit.tables import NOTIFY_OUTBOX_FUNCTION, plumbing


def _alembic_config(script_location: Path, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["schema"] = schema
    return config


def _run_upgrade(connection: Connection, config: Config, revision: str) -> None:
    """Migrate under a transaction-level advisory lock taken in the migration's own transaction.

    The lock goes with the commit (or rollback) itself, so the next replica waiting
    for it reads the version this one committed instead of migrating again, and a
    failed migration raises its own error rather than one from an unlock in an
    aborted transaction.
    """
    schema = config.attributes["schema"]
    connection.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"migrate:{schema}"}
    )
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    # The plumbing's trigger function is code, not schema: every upgrade brings it up to date
    # (a schema migrated before a change to it gets the change without a revision of its own).
    if connection.scalar(text("SELECT to_regclass('outbox_event')")) is not None:
        connection.execute(text(NOTIFY_OUTBOX_FUNCTION))


async def upgrade(settings: ServiceSettings, script_location: Path, revision: str = "head") -> None:
    """Run the service's migrations up to `revision` against its schema."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(
                _run_upgrade, _alembic_config(script_location, settings.db_schema), revision
            )
    finally:
        await engine.dispose()


def configure_from_env(target_metadata: MetaData) -> None:
    """Body of a service's ``migrations/env.py``: migrate on the connection it was given."""
    config = context.config
    connection: Connection = config.attributes["connection"]
    schema: str = config.attributes["schema"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=schema,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def create_plumbing_tables(op: Any) -> None:
    """Create the outbox, inbox, timer and API-key tables (call from a first migration)."""
    plumbing.create_all(op.get_bind())


def drop_plumbing_tables(op: Any) -> None:
    """Drop what `create_plumbing_tables` made."""
    plumbing.drop_all(op.get_bind())


def _differences(connection: Connection, metadata: MetaData) -> list[Any]:
    combined = MetaData()
    for table in (*metadata.tables.values(), *plumbing.tables.values()):
        table.to_metadata(combined)

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return not (type_ == "table" and name == "alembic_version")

    context = MigrationContext.configure(
        connection, opts={"include_object": include, "compare_type": True}
    )
    return list(compare_metadata(context, combined))


async def differences(settings: ServiceSettings, metadata: MetaData) -> list[Any]:
    """How the migrated schema differs from `metadata` plus the plumbing tables (empty: in step)."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_differences, metadata)
    finally:
        await engine.dispose()
