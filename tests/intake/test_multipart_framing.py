"""Multipart framing: truncated bodies, RFC 5987 file names and empty file inputs.

The bodies are written out byte by byte rather than built by httpx, so each
test sends exactly the framing a browser, a sloppy client or a dropped
connection would.
"""

import json
from typing import Any

import httpx
import pytest

from tests.intake.helpers import Intake, ticket_body

BOUNDARY = "klaxon-f7e3a9"
CLOSE = f"--{BOUNDARY}--\r\n".encode()
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
LOG = b"2026-01-01 ERROR upstream timed out\n"


def _part(disposition: str, content: bytes, content_type: str | None = None) -> bytes:
    """One part, delimiter first, ending with the CRLF that precedes the next delimiter."""
    head = f"--{BOUNDARY}\r\nContent-Disposition: form-data; {disposition}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode("latin-1") + b"\r\n" + content + b"\r\n"


def _ticket() -> bytes:
    return _part('name="ticket"', json.dumps(ticket_body()).encode(), "application/json")


def _file(disposition: str, content: bytes, name: str = "attachments") -> bytes:
    return _part(f'name="{name}"; {disposition}', content, "application/octet-stream")


async def _post(intake: Intake, body: bytes, path: str = "/v1/tickets") -> httpx.Response:
    headers = {**intake.auth(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return await intake.client.post(path, headers=headers, content=body)


async def _nothing_written(intake: Intake) -> bool:
    counts = [await intake.count(t) for t in ("ticket", "attachment", "outbox_event")]
    return counts == [0, 0, 0]


def _assert_truncated(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    error: dict[str, Any] = response.json()["errors"][0]
    assert error["field"] == "body"
    assert "closing boundary" in error["reason"]


ATTACHMENT_HEAD = (
    f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
    'name="attachments"; filename="server.log"\r\n\r\n'
).encode()


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(ATTACHMENT_HEAD + LOG, id="cut-in-attachment-data"),
        pytest.param(_file('filename="server.log"', LOG), id="no-delimiter-after-attachment"),
        pytest.param(
            _file('filename="server.log"', LOG) + f"--{BOUNDARY}".encode(), id="cut-in-delimiter"
        ),
        pytest.param(
            _file('filename="server.log"', LOG) + f"--{BOUNDARY}-".encode(), id="cut-in-close"
        ),
        pytest.param(f"--{BOUNDARY}\r\n".encode(), id="last-part-has-no-headers"),
        pytest.param(ATTACHMENT_HEAD[:-4], id="cut-in-attachment-headers"),
    ],
)
async def test_body_without_closing_boundary_is_422_and_nothing_is_written(
    intake: Intake, tail: bytes
) -> None:
    response = await _post(intake, _ticket() + tail)
    _assert_truncated(response)
    assert await _nothing_written(intake)


async def test_truncated_attachments_upload_adds_nothing(intake: Intake) -> None:
    filed = await intake.file()
    response = await _post(
        intake,
        _file('filename="early.log"', LOG, name="file") + ATTACHMENT_HEAD + LOG,
        path=f"/v1/tickets/{filed['id']}/attachments",
    )
    _assert_truncated(response)
    assert await intake.count("attachment") == 0
    assert (await intake.ticket(filed["id"]))["attachments"] == []


async def test_extended_filename_alone_makes_a_file_with_the_decoded_name(intake: Intake) -> None:
    body = (
        _ticket()
        + _file("filename*=UTF-8''%E6%88%AA%E5%9B%BE%20%C3%A9t%C3%A9.png", PNG)
        + _file("filename*=iso-8859-1'fr'caf%E9.log", LOG)
        + CLOSE
    )
    response = await _post(intake, body)
    assert response.status_code == 201, response.text
    attachments = response.json()["attachments"]
    assert [(a["filename"], a["content_type"]) for a in attachments] == [
        ("截图 été.png", "image/png"),
        ("café.log", "text/plain; charset=utf-8"),
    ]
    download = await intake.client.get(
        attachments[0]["url"], headers=intake.auth(intake.reader_key)
    )
    assert download.status_code == 200
    assert download.content == PNG


async def test_extended_filename_wins_over_the_plain_one(intake: Intake) -> None:
    body = (
        _ticket()
        + _file("filename=\"screen.png\"; filename*=UTF-8''%C3%A9cran.png", PNG)
        + _file("filename*=UTF-8''%E2%9C%97-trace.log; filename=\"trace.log\"", LOG)
        + CLOSE
    )
    response = await _post(intake, body)
    assert response.status_code == 201, response.text
    names = [a["filename"] for a in response.json()["attachments"]]
    assert names == ["écran.png", "✗-trace.log"]


async def test_malformed_extended_filename_falls_back_and_is_still_a_file(
    intake: Intake,
) -> None:
    filed = await intake.file()
    body = (
        _file("filename=\"plain.log\"; filename*=UTF-8''%ZZ.log", LOG, name="file")
        + _file("filename*=no-charset.log", LOG, name="file")
        + _file("filename*=UTF-8''%FF%FE.log", LOG, name="file")
        + _file("filename=\"koi.log\"; filename*=KOI8-R''%C1.log", LOG, name="file")
        + _file("filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", LOG, name="file")
        + _file("filename*=UTF-8''", LOG, name="file")
        + CLOSE
    )
    response = await _post(intake, body, path=f"/v1/tickets/{filed['id']}/attachments")
    assert response.status_code == 201, response.text
    assert [a["filename"] for a in response.json()] == [
        "plain.log",
        "attachment",
        "attachment",
        "koi.log",
        "passwd",
        "attachment",
    ]


async def test_empty_browser_file_input_is_ignored(intake: Intake) -> None:
    body = (
        _ticket()
        + _file('filename=""', b"")
        + _file('filename=""', LOG)
        + _file('filename="empty.log"', b"")
        + CLOSE
    )
    response = await _post(intake, body)
    assert response.status_code == 201, response.text
    attachments = response.json()["attachments"]
    assert [(a["filename"], a["size_bytes"]) for a in attachments] == [
        ("attachment", len(LOG)),
        ("empty.log", 0),
    ]
    assert await intake.count("attachment") == 2
