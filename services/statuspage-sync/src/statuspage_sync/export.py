"""Static export: every status page written to a directory, for any static host or CDN.

The running service writes a page again after each change when ``export_dir`` is set
(`statuspage_sync.cache`); ``python -m statuspage_sync export --output DIR`` writes
every page on demand.
"""

import time
from pathlib import Path

from sqlalchemy import select

from servicekit.db import create_engine, session_factory
from statuspage_sync import pages, snapshot
from statuspage_sync.cache import Entry, files_of, rendered_file, write_page
from statuspage_sync.models import status_page
from statuspage_sync.settings import Settings


async def export_all(settings: Settings, directory: Path) -> list[str]:
    """Write every page under `directory`; the slugs written."""
    engine = create_engine(settings)
    written = []
    try:
        async with session_factory(engine)() as session, session.begin():
            slugs = list(await session.scalars(select(status_page.c.slug).order_by("slug")))
            for slug in slugs:
                snap = await snapshot.take(session, slug, pages.page_url(settings, slug))
                if snap is None:
                    continue
                files = {name: rendered_file(name, body) for name, body in files_of(snap).items()}
                write_page(directory, slug, Entry(snap.page.version, time.monotonic(), files))
                written.append(slug)
    finally:
        await engine.dispose()
    return written
