"""Alembic, run per service with the version table inside the service's own schema.

A service keeps ``migrations/env.py`` (which calls `configure_from_env`) and
``migrations/versions/`` in its package; `upgrade` runs them, together with the
plumbing branch (`servicekit.plumbing`), to their heads under an advisory lock, so
replicas that start together migrate once.
"""

import os
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, text

from servicekit import plumbing
from servicekit.db import create_engine
from servicekit.plumbing import create_plumbing_tables, drop_plumbing_tables
from servicekit.settings import ServiceSettings
from servicekit.tables import NOTIFY_OUTBOX_FUNCTION
from servicekit.tables import plumbing as plumbing_metadata


def _alembic_config(script_location: Path, schema: str, *, with_plumbing: bool) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    locations = [script_location / "versions"]
    if with_plumbing:
        locations.append(plumbing.VERSIONS)
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(p) for p in locations))
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


async def upgrade(
    settings: ServiceSettings,
    script_location: Path,
    revision: str = "heads",
    *,
    with_plumbing: bool = True,
) -> None:
    """Run the service's migrations, and the plumbing branch's, up to `revision`.

    `with_plumbing` False runs the service's own revisions alone (for a script folder
    whose ``0001`` does not create the plumbing tables).
    """
    config = _alembic_config(script_location, settings.db_schema, with_plumbing=with_plumbing)
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run_upgrade, config, revision)
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


def _differences(connection: Connection, metadata: MetaData) -> list[Any]:
    combined = MetaData()
    for table in (*metadata.tables.values(), *plumbing_metadata.tables.values()):
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


__all__ = [
    "configure_from_env",
    "create_plumbing_tables",
    "differences",
    "drop_plumbing_tables",
    "upgrade",
]
