"""The monitor service's FastAPI app."""

from fastapi import FastAPI

from monitor.settings import Settings
from servicekit.runtime import create_service_app
from servicekit.settings import ServiceSettings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; its database and broker connections open in the lifespan."""
    return create_service_app(settings or Settings(), title="Klaxon monitor")
