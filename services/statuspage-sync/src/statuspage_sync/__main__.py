"""``python -m statuspage_sync serve|migrate|provision|create-api-key``."""

from pathlib import Path

from servicekit.cli import ServiceDefinition, main
from statuspage_sync.app import create_app
from statuspage_sync.settings import Settings

SERVICE = ServiceDefinition(
    name="statuspage_sync",
    load_settings=Settings,
    create_app=create_app,
    migrations=Path(__file__).parent / "migrations",
)

if __name__ == "__main__":
    main(SERVICE)
