"""``python -m intake serve|migrate|provision|create-api-key``."""

from pathlib import Path

from intake.app import create_app
from intake.schemas import KNOWN_SCOPES
from intake.settings import Settings
from servicekit.cli import ServiceDefinition, main

SERVICE = ServiceDefinition(
    name="intake",
    load_settings=Settings,
    create_app=create_app,
    migrations=Path(__file__).parent / "migrations",
    scopes=KNOWN_SCOPES,
)

if __name__ == "__main__":
    main(SERVICE)
