"""Alembic environment of the statuspage schema."""

from servicekit.migrations import configure_from_env
from statuspage_sync.models import metadata

configure_from_env(metadata)
