"""Alembic environment of the monitor schema."""

from monitor.models import metadata
from servicekit.migrations import configure_from_env

configure_from_env(metadata)
