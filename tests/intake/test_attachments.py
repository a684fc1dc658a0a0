"""Attachments: stored with the ticket, typed by content, capped in size and number."""

import hashlib
import json
from typing import Any

from tests.harness import Throwaway
from tests.intake.helpers import Intake, running_intake, ticket_body

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
GIF = b"GIF89a" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
LOG = "2026-01-01 ERROR upstream timed out ✗\n".encode()
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64


def _multipart(files: list[tuple[str, bytes]], ticket: Any = None) -> dict[str, Any]:
    data = {"ticket": json.dumps(ticket if ticket is not None else ticket_body())}
    return {
        "data": data,
        "files": [
            ("attachments", (name, content, "application/octet-stream")) for name, content in files
        ],
    }


async def test_ticket_with_screenshots_and_logs_is_filed_in_one_request(intake: Intake) -> None:
    files = [
        ("screen.png", PNG),
        ("photo.jpg", JPEG),
        ("anim.gif", GIF),
        ("shot.webp", WEBP),
        ("report.pdf", PDF),
        ("server.log", LOG),
    ]
    response = await intake.client.post("/v1/tickets", headers=intake.auth(), **_multipart(files))
    assert response.status_code == 201, response.text
    attachments = response.json()["attachments"]
    assert [a["content_type"] for a in attachments] == [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain; charset=utf-8",
    ]
    for attachment, (name, content) in zip(attachments, files, strict=True):
        assert attachment["filename"] == name
        assert attachment["size_bytes"] == len(content)
        assert attachment["sha256"] == hashlib.sha256(content).hexdigest()
        download = await intake.client.get(
            attachment["url"], headers=intake.auth(intake.reader_key)
        )
        assert download.status_code == 200
        assert download.content == content
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.headers["content-type"].startswith(attachment["content_type"].split(";")[0])


async def test_type_is_judged_by_content_not_by_name(intake: Intake) -> None:
    response = await intake.client.post(
        "/v1/tickets", headers=intake.auth(), **_multipart([("innocent.png", EXE)])
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert await intake.count("ticket") == 0
    assert await intake.count("outbox_event") == 0
    renamed = await intake.client.post(
        "/v1/tickets", headers=intake.auth(), **_multipart([("screenshot.exe", PNG)])
    )
    assert renamed.status_code == 201
    assert renamed.json()["attachments"][0]["content_type"] == "image/png"


async def test_attachment_over_the_limit_is_413_and_nothing_is_written(env: Throwaway) -> None:
    async with running_intake(env, attachment_max_bytes=1024) as intake:
        big = b"a" * 1025
        response = await intake.client.post(
            "/v1/tickets", headers=intake.auth(), **_multipart([("ok.log", LOG), ("big.log", big)])
        )
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        for table in ("ticket", "attachment", "outbox_event"):
            assert await intake.count(table) == 0
        exact = await intake.client.post(
            "/v1/tickets", headers=intake.auth(), **_multipart([("edge.log", b"a" * 1024)])
        )
        assert exact.status_code == 201


async def test_default_limit_is_ten_mebibytes(intake: Intake) -> None:
    big = b"a" * (10 * 1024 * 1024 + 1)
    response = await intake.client.post(
        "/v1/tickets", headers=intake.auth(), **_multipart([("huge.log", big)])
    )
    assert response.status_code == 413
    assert await intake.count("ticket") == 0


async def test_at_most_ten_attachments_per_ticket(intake: Intake) -> None:
    eleven = [(f"{i}.log", LOG) for i in range(11)]
    response = await intake.client.post("/v1/tickets", headers=intake.auth(), **_multipart(eleven))
    assert response.status_code == 413
    assert await intake.count("ticket") == 0

    filed = await intake.client.post(
        "/v1/tickets", headers=intake.auth(), **_multipart([(f"{i}.log", LOG) for i in range(9)])
    )
    assert filed.status_code == 201
    ticket_id = filed.json()["id"]
    two_more = await intake.client.post(
        f"/v1/tickets/{ticket_id}/attachments",
        headers=intake.auth(),
        files=[("file", ("a.png", PNG)), ("file", ("b.png", PNG))],
    )
    assert two_more.status_code == 413
    one_more = await intake.client.post(
        f"/v1/tickets/{ticket_id}/attachments",
        headers=intake.auth(),
        files=[("file", ("a.png", PNG))],
    )
    assert one_more.status_code == 201, one_more.text
    assert await intake.count("attachment") == 10


async def test_attachments_are_added_to_an_existing_ticket_and_logged(intake: Intake) -> None:
    filed = await intake.file()
    response = await intake.client.post(
        f"/v1/tickets/{filed['number']}/attachments",
        headers=intake.auth(),
        files=[("file", ("later.pdf", PDF)), ("file", ("../../etc/passwd.log", LOG))],
    )
    assert response.status_code == 201, response.text
    added = response.json()
    assert [a["filename"] for a in added] == ["later.pdf", "passwd.log"]
    ticket = await intake.ticket(filed["id"])
    assert [a["id"] for a in ticket["attachments"]] == [a["id"] for a in added]
    assert ticket["timeline"][-1]["kind"] == "attachment_added"
    bad = await intake.client.post(
        f"/v1/tickets/{filed['id']}/attachments",
        headers=intake.auth(),
        files=[("file", ("x.bin", b"\x00\x01\x02"))],
    )
    assert bad.status_code == 415
    form = await intake.client.post(
        f"/v1/tickets/{filed['id']}/attachments", headers=intake.auth(), data={"a": "b"}
    )
    assert form.status_code == 415
    no_files = await intake.client.post(
        f"/v1/tickets/{filed['id']}/attachments",
        headers={**intake.auth(), "Content-Type": "multipart/form-data; boundary=xyz"},
        content=b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--xyz--\r\n',
    )
    assert no_files.status_code == 422, no_files.text


async def test_multipart_ticket_is_validated_like_json(intake: Intake) -> None:
    bad = await intake.client.post(
        "/v1/tickets",
        headers=intake.auth(),
        **_multipart([("a.png", PNG)], ticket=ticket_body(reporter={"name": "A", "email": "x"})),
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "reporter.email"
    missing = await intake.client.post(
        "/v1/tickets", headers=intake.auth(), files=[("attachments", ("a.png", PNG))]
    )
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "ticket"
    assert await intake.count("ticket") == 0


async def test_malformed_multipart_is_a_problem_not_a_crash(intake: Intake) -> None:
    for content_type, body in (
        ("multipart/form-data", b"--x\r\n"),
        ("multipart/form-data; boundary=xyz", b"garbage without boundaries"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data\r\n"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nbroken header\r\n\r\nx\r\n--xyz--\r\n"),
    ):
        response = await intake.client.post(
            "/v1/tickets",
            headers={**intake.auth(), "Content-Type": content_type},
            content=body,
        )
        assert response.status_code in (413, 415, 422), (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert await intake.count("ticket") == 0


async def test_unknown_attachment_is_404(intake: Intake) -> None:
    filed = await intake.file()
    response = await intake.client.get(
        f"/v1/tickets/{filed['id']}/attachments/00000000-0000-0000-0000-000000000000",
        headers=intake.auth(intake.reader_key),
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
