"""Settings of the intake service (``KLAXON_*`` environment variables)."""

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Intake settings."""

    service_name: str = "intake"
    db_schema: str = "intake"
    http_port: int = 8001
