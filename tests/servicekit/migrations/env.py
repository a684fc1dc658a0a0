"""Alembic environment of the schema the plumbing tests use."""

from servicekit.migrations import configure_from_env
from servicekit.tables import new_metadata

configure_from_env(new_metadata())
