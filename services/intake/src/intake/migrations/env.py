"""Alembic environment of the intake schema."""

from intake.models import metadata
from servicekit.migrations import configure_from_env

configure_from_env(metadata)
