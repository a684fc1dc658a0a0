"""``python -m notifier serve|migrate|provision|create-api-key``."""

from pathlib import Path

from notifier.app import create_app
from notifier.settings import Settings
from servicekit.auth import ADMIN
from servicekit.cli import ServiceDefinition, main

SERVICE = ServiceDefinition(
    name="notifier",
    load_settings=Settings,
    create_app=create_app,
    migrations=Path(__file__).parent / "migrations",
    scopes=frozenset({ADMIN, "oncall:read", "oncall:write", "pages:write"}),
)

if __name__ == "__main__":
    main(SERVICE)
