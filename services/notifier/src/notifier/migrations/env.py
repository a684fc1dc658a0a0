"""Alembic environment of the notifier schema."""

from notifier.models import metadata
from servicekit.migrations import configure_from_env

configure_from_env(metadata)
