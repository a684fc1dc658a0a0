"""``python -m monitor serve|migrate|provision|create-api-key``."""

from pathlib import Path

from monitor.app import create_app
from monitor.settings import Settings
from servicekit.auth import ADMIN
from servicekit.cli import ServiceDefinition, main

SERVICE = ServiceDefinition(
    name="monitor",
    load_settings=Settings,
    create_app=create_app,
    migrations=Path(__file__).parent / "migrations",
    scopes=frozenset({ADMIN, "monitors:read", "monitors:write"}),
)

if __name__ == "__main__":
    main(SERVICE)
