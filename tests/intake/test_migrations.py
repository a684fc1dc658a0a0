"""The hand-written migration creates exactly what the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from intake.models import metadata
from intake.settings import Settings
from servicekit.tables import plumbing
from tests.harness import Throwaway
from tests.intake.helpers import provision


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    combined = MetaData()
    for table in (*metadata.tables.values(), *plumbing.tables.values()):
        table.to_metadata(combined)
    return [
        d
        for d in compare_metadata(context, combined)
        if not (d[0] == "remove_table" and d[1].name == "alembic_version")
    ]


async def test_migration_matches_the_models(env: Throwaway) -> None:
    settings = env.settings(Settings, schema="intake")
    await provision(env, settings)
    engine = create_async_engine(
        settings.database_url, connect_args={"server_settings": {"search_path": "intake"}}
    )
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
            await connection.exec_driver_sql("ALTER TABLE ticket DROP COLUMN api_key_id")
            assert await connection.run_sync(_diff) != []  # the comparison does see the schema
    finally:
        await engine.dispose()
