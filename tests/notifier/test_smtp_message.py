"""The email channel's wire format: a message serialized directly reads back, in a mail
parser, exactly as the `email` package's own message of the same payload."""

import email
from email.message import EmailMessage
from email.policy import default

import pytest

from notifier import emails
from notifier.settings import Settings
from notifier.smtp import RawMessage, build_message, raw_message

KEY = "page:6f1c2a9e-3b7d-4c8e-9f00-123456789abc:r1:l1:6f1c2a9e-3b7d-4c8e-9f00-123456789abc:email:0"


def payload(settings: Settings, subject: str, *, thread_start: bool) -> dict[str, object]:
    return emails.render(
        settings,
        template="page",
        to="oncall@ops.example",
        subject=subject,
        dedupe_key=KEY,
        thread="<page-1@klaxon.localhost>",
        is_thread_start=thread_start,
        context={
            "heading": subject,
            "product_name": "Canvas Hosting — EU",
            "summary": "Every page returns 502 «again»",
            "opened_at": "2026-11-29 09:12 UTC",
            "level": 1,
            "round": 1,
            "reason": "",
            "tickets": [{"number": "KLX-1", "subject": "Ünïcode down", "reporter_name": "Zoë"}],
            "ack_url": "https://klaxon.example/v1/links/a",
            "resolve_url": "https://klaxon.example/v1/links/r",
        },
        meta={"purpose": "page"},
    )


@pytest.mark.parametrize(
    "mail_from", ["Klaxon <klaxon@ops.example>", "Klaxon Pagër <k@ops.example>"]
)
@pytest.mark.parametrize(
    "subject",
    [
        "[Klaxon] Canvas Hosting: CRITICAL ticket KLX-1: Every page returns 502",
        "[Klaxon] Canvas Hosting — EU: CRITICAL ticket KLX-1: « Ünïcode » down " * 3,
    ],
)
@pytest.mark.parametrize("thread_start", [True, False])
def test_a_raw_message_reads_as_the_email_package_would_write_it(
    mail_from: str, subject: str, thread_start: bool
) -> None:
    settings = Settings(link_secret="test", mail_from=mail_from)
    data = payload(settings, subject.strip(), thread_start=thread_start)
    raw = raw_message(settings, data, KEY)
    assert isinstance(raw, RawMessage)
    assert raw.recipients == ("oncall@ops.example",)
    assert raw.sender == email.utils.parseaddr(mail_from)[1]
    assert all(len(line) <= 998 for line in raw.data.split(b"\r\n"))
    ours = email.message_from_bytes(raw.data, policy=default)
    theirs = email.message_from_bytes(build_message(settings, data, KEY).as_bytes(), policy=default)
    assert str(ours["Subject"]) == subject.strip()
    for name in ("From", "To", "Message-ID", "In-Reply-To", "References", "Auto-Submitted"):
        assert str(ours[name]) == str(theirs[name]), name
    assert str(ours["X-Klaxon-Delivery"]) == KEY
    assert ours.get_content_type() == "multipart/alternative"
    for kind in ("plain", "html"):
        our_part, their_part = ours.get_body((kind,)), theirs.get_body((kind,))
        assert our_part is not None
        assert their_part is not None
        assert our_part.get_content() == their_part.get_content()


def test_what_a_raw_message_cannot_carry_is_left_to_the_email_package() -> None:
    settings = Settings(link_secret="test")
    data = payload(settings, "Down", thread_start=True)
    assert isinstance(raw_message(settings, {**data, "to": "zoë@ops.example"}, KEY), EmailMessage)
    with pytest.raises(ValueError, match="linefeed"):
        raw_message(settings, {**data, "subject": "Down\r\nBcc: x@evil.example"}, KEY)
