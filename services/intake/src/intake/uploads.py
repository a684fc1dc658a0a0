"""Reading request bodies with caps, so an oversized upload is refused before it is buffered.

A JSON body is read up to `json_body_max_bytes`; a multipart body is parsed as
it streams in, and reading stops (413) as soon as one file passes
`attachment_max_bytes`, a field passes `json_body_max_bytes`, there are too
many parts, or the whole body passes `request_body_max_bytes`. A body that
stops before its closing boundary is refused (422) rather than filed without
its last part.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from intake.errors import AttachmentTooLarge, Unprocessable
from intake.settings import Settings
from intake.tickets.files import Upload
from servicekit.api import BodyTooLarge

MAX_FILENAME = 255
_DISPOSITION_PARAM = re.compile(r';\s*([^\s;=]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_EXT_VALUE = re.compile(
    r"(?P<charset>[^']*)'[A-Za-z0-9-]*'"
    r"(?P<chars>(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9!#$&+.^_`|~-])*)"
)
_EXT_CHARSETS = frozenset({"utf-8", "iso-8859-1"})


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)
    name: str = ""
    filename: str | None = None
    unnamed: bool = False


@dataclass
class MultipartBody:
    """The fields (text) and files of a multipart/form-data body."""

    fields: dict[str, str]
    files: list[tuple[str, Upload]]


def _safe_filename(raw: str) -> str:
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in "\"';")
    return name[:MAX_FILENAME] or "attachment"


def _disposition_params(disposition: str) -> dict[str, str]:
    """The parameters of a Content-Disposition value by lower-case name, unquoted.

    python-multipart's parse_options_header drops extended (`name*`) parameters,
    so `filename*` is read from the raw header here; the first of a repeated
    parameter wins.
    """
    params: dict[str, str] = {}
    for match in _DISPOSITION_PARAM.finditer(disposition):
        key, value = match.group(1).lower(), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(key, value)
    return params


def _decode_ext_value(value: str) -> str | None:
    """An RFC 5987 ext-value (`UTF-8''na%C3%AFve.png`) decoded, or None if malformed.

    Only the two charsets RFC 5987 requires are accepted; an empty name counts
    as malformed so the plain `filename` can stand in for it.
    """
    match = _EXT_VALUE.fullmatch(value)
    if match is None:
        return None
    charset = match["charset"].lower()
    if charset not in _EXT_CHARSETS:
        return None
    try:
        decoded = unquote(match["chars"], encoding=charset, errors="strict")
    except UnicodeDecodeError:
        return None
    return decoded or None


def _part_filename(disposition: str, plain: bytes | None) -> str | None:
    """The name a file part was sent with, or None when the part is a form field.

    `filename*` (RFC 6266, sent by browsers for non-ASCII names) makes a part a
    file and wins over `filename`; if it is malformed, `filename` is used.
    """
    extended = _disposition_params(disposition).get("filename*")
    if extended is not None:
        decoded = _decode_ext_value(extended)
        if decoded is not None:
            return decoded
    if plain is not None:
        return plain.decode("utf-8", "replace")
    return "" if extended is not None else None


class _Collector:
    """python-multipart callbacks that cap every part while the body streams in."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.parts: list[_Part] = []
        self.current = _Part()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self.open = False
        self.ended = False

    def on_part_begin(self) -> None:
        self.current = _Part()
        self.open = True
        if len(self.parts) >= self.settings.attachments_per_ticket + 20:
            raise AttachmentTooLarge("too many parts in the multipart body")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field.extend(data[start:end])

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value.extend(data[start:end])

    def on_header_end(self) -> None:
        name = self._header_field.decode("latin-1").lower()
        self.current.headers[name] = self._header_value.decode("latin-1")
        self._header_field.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        disposition = self.current.headers.get("content-disposition", "")
        _, options = parse_options_header(disposition)
        self.current.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = _part_filename(disposition, options.get(b"filename"))
        if filename is not None:
            self.current.filename = _safe_filename(filename)
            self.current.unnamed = not filename

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.current.data.extend(data[start:end])
        if self.current.filename is not None:
            limit = self.settings.attachment_max_bytes
            if len(self.current.data) > limit:
                raise AttachmentTooLarge(
                    f"attachment {self.current.filename!r} is over {limit} bytes",
                    limit_bytes=limit,
                )
        elif len(self.current.data) > self.settings.json_body_max_bytes:
            raise AttachmentTooLarge(
                f"form field {self.current.name!r} is over "
                f"{self.settings.json_body_max_bytes} bytes",
                limit_bytes=self.settings.json_body_max_bytes,
            )

    def on_part_end(self) -> None:
        self.open = False
        self.parts.append(self.current)

    def on_end(self) -> None:
        self.ended = True

    def check_complete(self) -> None:
        """Refuse a body that stopped before its closing boundary.

        python-multipart's finalize() accepts a cut-off body and never ends the
        unfinished part, which would file the ticket without its last part.
        """
        if not self.ended or self.open:
            raise Unprocessable(
                "body", "the multipart body is truncated: it has no closing boundary"
            )


async def read_multipart(request: Request, settings: Settings) -> MultipartBody:
    """Parse a multipart/form-data body with every cap enforced while it streams."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise Unprocessable("Content-Type", "multipart/form-data needs a boundary")
    collector = _Collector(settings)
    limit = settings.request_body_max_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the request body is over {limit} bytes", limit_bytes=limit)
    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": collector.on_part_begin,
                "on_part_data": collector.on_part_data,
                "on_part_end": collector.on_part_end,
                "on_header_field": collector.on_header_field,
                "on_header_value": collector.on_header_value,
                "on_header_end": collector.on_header_end,
                "on_headers_finished": collector.on_headers_finished,
                "on_end": collector.on_end,
            },
        )
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise BodyTooLarge(f"the request body is over {limit} bytes", limit_bytes=limit)
            parser.write(chunk)
        parser.finalize()
        collector.check_complete()
    except MultipartParseError as exc:
        raise Unprocessable("body", f"malformed multipart body ({exc})") from None
    except ClientDisconnect:
        raise Unprocessable(
            "body", "the client disconnected before sending the whole body"
        ) from None

    fields: dict[str, str] = {}
    files: list[tuple[str, Upload]] = []
    for part in collector.parts:
        if part.filename is not None:
            if part.unnamed and not part.data:
                continue
            files.append((part.name, Upload(part.filename, bytes(part.data))))
        else:
            try:
                fields[part.name] = part.data.decode("utf-8")
            except UnicodeDecodeError:
                raise Unprocessable(part.name or "body", "must be UTF-8 text") from None
    return MultipartBody(fields, files)
