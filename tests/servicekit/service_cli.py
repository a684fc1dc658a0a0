"""The test service's command line, run as a real process.

Usage: ``python -m tests.servicekit.service_cli COMMAND ...`` with the service's settings
as JSON in ``KLAXON_TEST_SETTINGS`` (see `servicekit.cli.main`).
"""

import os

from servicekit.cli import ServiceDefinition, main
from servicekit.runtime import create_service_app
from servicekit.settings import ServiceSettings
from tests.servicekit.helpers import MIGRATIONS


def _settings() -> ServiceSettings:
    return ServiceSettings.model_validate_json(os.environ["KLAXON_TEST_SETTINGS"])


SERVICE = ServiceDefinition(
    name="test",
    load_settings=_settings,
    create_app=lambda settings: create_service_app(settings, title="test"),
    migrations=MIGRATIONS,
)

if __name__ == "__main__":
    main(SERVICE)
