"""Migrations of the plumbing tables (outbox, inbox, timers, API keys, deliveries,
product catalogue) that every service keeps in its own schema.

Every service's first revision (``0001``) creates the plumbing as it first was, with
`create_plumbing_tables`: explicit, frozen operations, never the live table metadata,
so it builds the same tables on every database, whenever it runs. Every later change
to a plumbing table is a revision in ``versions/`` here, on an Alembic branch labelled
``plumbing`` whose root depends on the service's ``0001``. `servicekit.migrations.upgrade`
adds this folder to every service's version locations and upgrades all heads, so a
change made here reaches every service's existing schema as well as new ones.
"""

from pathlib import Path

from servicekit.plumbing.v1 import create_plumbing_tables, drop_plumbing_tables

VERSIONS = Path(__file__).parent / "versions"
"""The plumbing branch's revisions."""

__all__ = ["VERSIONS", "create_plumbing_tables", "drop_plumbing_tables"]
