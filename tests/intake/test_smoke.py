"""Filing a ticket works end to end through the API."""

from tests.intake.helpers import Intake


async def test_critical_ticket_is_filed_with_number_and_next_steps(intake: Intake) -> None:
    body = await intake.file()
    assert body["number"].startswith("KLX-")
    assert body["status"] == "new"
    assert "on-call engineer" in body["next_steps"]
    fetched = await intake.ticket(body["number"])
    assert fetched["id"] == body["id"]
