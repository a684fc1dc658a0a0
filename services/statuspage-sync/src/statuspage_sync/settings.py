"""Settings of the statuspage-sync service (``KLAXON_*`` environment variables)."""

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Statuspage-sync settings."""

    service_name: str = "statuspage"
    db_schema: str = "statuspage"
    http_port: int = 8004
