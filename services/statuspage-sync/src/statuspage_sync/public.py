"""The public status pages under ``/status``, answered by a plain ASGI middleware in
front of the API's routing: no key, no database query per request
(`statuspage_sync.cache`), ETag / 304 and Cache-Control.

``/status/<slug>/`` is the HTML page; beside it ``style.css``, ``history.atom``,
``history.rss`` and ``api/v2/<document>.json``. Anything else, including a slug that
does not exist, is the same 404, which tells nothing about what exists.
"""

import json
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from statuspage_sync.cache import PageCache, Rendered
from statuspage_sync.pages import SLUG

log = logging.getLogger(__name__)

_NOT_FOUND = json.dumps(
    {"type": "about:blank", "title": "Not found", "status": 404, "detail": "There is no such page."}
).encode()
_UNAVAILABLE = json.dumps(
    {
        "type": "about:blank",
        "title": "Service unavailable",
        "status": 503,
        "detail": "The status page is starting; retry shortly.",
    }
).encode()


PREFIX = "/status/"


class PublicPages:
    """Answers ``/status/...`` from a `PageCache`; passes everything else to `app`."""

    def __init__(self, app: ASGIApp, cache: PageCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        root = scope.get("root_path", "") + PREFIX.rstrip("/")
        slug, slash, rest = scope["path"][len(PREFIX) :].partition("/")
        if scope["method"] not in ("GET", "HEAD"):
            await _send(send, 405, b"", "text/plain", [(b"allow", b"GET, HEAD")], scope)
            return
        if slug and not SLUG.fullmatch(slug):  # not a slug (a CR, LF, ...): never echoed back
            await _send(send, 404, _NOT_FOUND, "application/problem+json", [], scope)
            return
        if slug and not slash:
            location = f"{root}/{slug}/".encode()
            await _send(send, 308, b"", "text/plain", [(b"location", location)], scope)
            return
        try:
            rendered = await self.cache.get(slug, rest or "index.html") if slug else None
        except TimeoutError:
            headers = [(b"retry-after", b"2")]
            await _send(send, 503, _UNAVAILABLE, "application/problem+json", headers, scope)
            return
        if rendered is None:
            await _send(send, 404, _NOT_FOUND, "application/problem+json", [], scope)
            return
        await self._serve(scope, send, rendered)

    async def _serve(self, scope: Scope, send: Send, rendered: Rendered) -> None:
        max_age = self.cache.settings.cache_max_age_s
        match: bytes | None = None
        gzip_ok = False
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                match = value
            elif name == b"accept-encoding":
                gzip_ok = accepts_gzip(value)
        body, etag = rendered.body, rendered.etag
        if gzip_ok:
            body, etag = rendered.gzipped, rendered.etag[:-1] + '-gz"'
        headers = [
            (b"etag", etag.encode()),
            (b"cache-control", f"public, max-age={max_age}".encode()),
            (b"vary", b"Accept-Encoding"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if gzip_ok:
            headers.append((b"content-encoding", b"gzip"))
        if rendered.media_type == "application/json":
            headers.append((b"access-control-allow-origin", b"*"))
        if match is not None:
            tags = {tag.strip() for tag in match.decode("latin-1").split(",")}
            if etag in tags or "*" in tags:
                await _send(send, 304, b"", None, headers, scope)
                return
        await _send(send, 200, body, rendered.media_type, headers, scope)


def accepts_gzip(header: bytes) -> bool:
    """Whether an Accept-Encoding header accepts gzip: ``gzip`` (or, if it is not named,
    ``*``) with a quality above 0."""
    quality: dict[str, float] = {}
    for item in header.decode("latin-1").lower().split(","):
        coding, _, params = item.partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[coding.strip()] = q
    named = quality.get("gzip", quality.get("x-gzip"))
    return (named if named is not None else quality.get("*", 0.0)) > 0


async def _send(
    send: Send,
    status: int,
    body: bytes,
    media_type: str | None,
    headers: list[tuple[bytes, bytes]],
    scope: Scope,
) -> None:
    all_headers = list(headers)
    if media_type is not None:
        all_headers.append((b"content-type", media_type.encode()))
    if status != 304:
        all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    payload = b"" if scope["method"] == "HEAD" or status == 304 else body
    await send({"type": "http.response.body", "body": payload})
