"""Every service's migrations build exactly the tables its models describe."""

import importlib

import pytest

from servicekit.cli import ServiceDefinition
from servicekit.db import create_engine
from servicekit.migrations import differences
from servicekit.settings import ServiceSettings
from tests.harness import Throwaway

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
