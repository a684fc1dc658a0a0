"""The statuspage-sync service's FastAPI app."""

from fastapi import FastAPI

from servicekit.runtime import create_service_app
from servicekit.settings import ServiceSettings
from statuspage_sync.settings import Settings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; its database and broker connections open in the lifespan."""
    return create_service_app(settings or Settings(), title="Klaxon statuspage-sync")
