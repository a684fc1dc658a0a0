"""Public pages rendered once per change and held in memory, consistent across replicas.

Each page has a ``version`` in Postgres that every change raises, with a NOTIFY
(`pages.touch`). Every replica LISTENs: it knows each page's newest version
without asking the database, and renders a page again (all its files at once:
HTML, v2 JSON, feeds) on the first request after a change. A request never
queries the database unless its page changed since the last render; an unknown
slug is answered from the known versions alone. The versions are read again
after each (re)connection and every ``VERSION_RESYNC_S``, so a notification lost
while disconnected is made good. If rendering fails (the database is away), the
last rendering is served.
"""

import asyncio
import contextlib
import gzip
import hashlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from sqlalchemy import select

from servicekit.db import asyncpg_dsn, server_settings
from statuspage_sync import feeds, html, pages, snapshot, v2
from statuspage_sync.models import status_page
from statuspage_sync.settings import Settings

if TYPE_CHECKING:
    from servicekit.runtime import Runtime

log = logging.getLogger(__name__)

VERSION_RESYNC_S = 10.0
READY_WAIT_S = 5.0

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".atom": "application/atom+xml",
    ".rss": "application/rss+xml",
    ".css": "text/css; charset=utf-8",
}


@dataclass(frozen=True)
class Rendered:
    """One file of a page, ready to send."""

    body: bytes
    media_type: str
    etag: str
    gzipped: bytes
    """The body gzip-compressed once, for clients that accept it (a browser herd)."""


@dataclass(frozen=True)
class Entry:
    """Every file of one page at one version."""

    version: int
    rendered_at: float
    files: dict[str, Rendered]


def files_of(snap: snapshot.Snapshot) -> dict[str, bytes]:
    """Every file of a page by its path under the page's URL."""
    files = {"index.html": html.render(snap), "style.css": html.stylesheet()}
    files.update({f"api/v2/{name}": body for name, body in v2.documents(snap).items()})
    files.update(feeds.render(snap))
    return files


def rendered_files(snap: snapshot.Snapshot) -> dict[str, "Rendered"]:
    """Every file of a page, ready to send."""
    return {name: rendered_file(name, body) for name, body in files_of(snap).items()}


def rendered_file(name: str, body: bytes) -> Rendered:
    """`body` as it is sent: with its media type, ETag and gzip-compressed copy."""
    media = MEDIA_TYPES[Path(name).suffix]
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    return Rendered(body, media, etag, gzip.compress(body, compresslevel=6, mtime=0))


class PageCache:
    """Known page versions (from NOTIFY) and the renderings of pages, in memory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.versions: dict[str, int] = {}
        self.entries: dict[str, Entry] = {}
        self.loaded = asyncio.Event()
        self._runtime: Runtime | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._resync = asyncio.Event()
        self._changed = asyncio.Event()
        self._exported: dict[str, int] = {}
        """The version of each page last rendered (and exported) by `_refresh_forever`."""
        self._swept = False
        """Whether the export directory was cleared of unknown pages since start-up."""
        self.renders = 0
        """How many times a page was rendered (each read the database once)."""

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == "*":
            self._resync.set()
            return
        slug, _, version = payload.rpartition(":")
        if slug and version.isdigit() and int(version) > self.versions.get(slug, 0):
            self.versions[slug] = int(version)
            self._changed.set()

    def saw(self, versions: dict[str, int]) -> None:
        """Pages this process just changed (slug -> version), known before their NOTIFY."""
        for slug, version in versions.items():
            if version > self.versions.get(slug, 0):
                self.versions[slug] = version
                self._changed.set()

    async def _load_versions(self, conn: asyncpg.Connection) -> None:
        # Bounded: a connection gone silent raises here, and the loop reconnects.
        rows = await conn.fetch("SELECT slug, version FROM status_page", timeout=READY_WAIT_S)
        fresh = {row["slug"]: int(row["version"]) for row in rows}
        self.versions = fresh
        for slug in [s for s in self.entries if s not in fresh]:
            del self.entries[slug]
        self._changed.set()

    async def follow(self, runtime: "Runtime") -> None:
        """Keep the known versions current until cancelled (a service loop)."""
        self._runtime = runtime
        settings = self.settings
        conn = await asyncpg.connect(
            asyncpg_dsn(settings.database_url),
            server_settings=server_settings(settings, role="pages"),
            timeout=READY_WAIT_S,
        )
        refresher = asyncio.create_task(self._refresh_forever())
        try:
            channel = pages.VERSIONS_CHANNEL.format(schema=settings.db_schema)
            await conn.add_listener(channel, self._notified)
            await self._load_versions(conn)  # after LISTEN: nothing falls in between
            self.loaded.set()
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._resync.wait(), VERSION_RESYNC_S)
                self._resync.clear()
                await self._load_versions(conn)
        finally:
            refresher.cancel()
            with contextlib.suppress(Exception):
                await conn.close()

    async def get(self, slug: str, name: str) -> Rendered | None:
        """The file `name` of page `slug`, rendered again if the page changed; None if either
        does not exist. Raises TimeoutError if the versions were never loaded."""
        if not self.loaded.is_set():
            await asyncio.wait_for(self.loaded.wait(), READY_WAIT_S)
        entry = await self.entry(slug)
        return entry.files.get(name) if entry else None

    def _fresh(self, entry: Entry | None, version: int) -> bool:
        return (
            entry is not None
            and entry.version >= version
            and time.monotonic() - entry.rendered_at < self.settings.render_max_age_s
        )

    async def entry(self, slug: str) -> Entry | None:
        """The page's current rendering (rendered now if stale); None for an unknown slug."""
        version = self.versions.get(slug)
        if version is None:
            return None
        entry = self.entries.get(slug)
        if self._fresh(entry, version):
            return entry
        lock = self._locks.setdefault(slug, asyncio.Lock())
        async with lock:
            entry = self.entries.get(slug)
            version = self.versions.get(slug, version)
            if self._fresh(entry, version):
                return entry
            try:
                fresh = await self._render(slug)
            except Exception:
                if entry is None:
                    raise
                log.warning("rendering %s failed; serving the last rendering", slug, exc_info=True)
                return entry
            if fresh is None:
                self.entries.pop(slug, None)
                return None
            self.entries[slug] = fresh
            return fresh

    async def _render(self, slug: str) -> Entry | None:
        if self._runtime is None:
            raise RuntimeError("the page cache is not running")
        self.renders += 1
        async with self._runtime.sessions() as session, session.begin():
            version = await session.scalar(
                select(status_page.c.version).where(status_page.c.slug == slug)
            )
            if version is None:
                return None
            snap = await snapshot.take(session, slug, pages.page_url(self.settings, slug))
        if snap is None:
            return None
        # Rendering is pure CPU; in a thread, the event loop keeps answering meanwhile.
        files = await asyncio.to_thread(rendered_files, snap)
        return Entry(int(version), time.monotonic(), files)

    async def _refresh_forever(self) -> None:
        """Render each changed page as soon as its change is known (so requests rarely
        wait for a rendering), and export it if ``export_dir`` is set."""
        directory = Path(self.settings.export_dir) if self.settings.export_dir else None
        while True:
            await self._changed.wait()
            self._changed.clear()
            for slug, version in list(self.versions.items()):
                if self._exported.get(slug) == version:
                    continue
                try:
                    entry = await self.entry(slug)
                    if entry is not None and directory is not None:
                        await asyncio.to_thread(write_page, directory, slug, entry)
                    if entry is not None:
                        self._exported[slug] = entry.version
                except Exception:
                    log.warning(
                        "rendering %s failed; retrying on the next change", slug, exc_info=True
                    )
                    self._exported.pop(slug, None)
            gone = [s for s in self._exported if s not in self.versions]
            for slug in gone:
                del self._exported[slug]
            if directory is not None and (gone or not self._swept):
                # a renamed page's old copy would otherwise go on showing its last state
                await asyncio.to_thread(remove_unknown_pages, directory, set(self.versions))
                self._swept = True


def remove_unknown_pages(directory: Path, slugs: set[str]) -> None:
    """Remove the exported copy of every page not in `slugs` (renamed away): only
    directories named like a slug that hold an exported ``api/v2/summary.json``."""
    if not directory.is_dir():
        return
    for child in directory.iterdir():
        exported = child / "api" / "v2" / "summary.json"
        if child.name not in slugs and pages.SLUG.fullmatch(child.name) and exported.is_file():
            shutil.rmtree(child, ignore_errors=True)


def write_page(directory: Path, slug: str, entry: Entry) -> None:
    """Write a page's files under ``directory/<slug>/``, each replaced atomically."""
    for name, rendered in entry.files.items():
        target = directory / slug / name
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_bytes(rendered.body)
        temporary.replace(target)
