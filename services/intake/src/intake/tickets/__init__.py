"""Ticket use cases. Each takes the caller's session and never commits: the route or
consumer owns the transaction.

- `filing`: file a ticket (the portal's hot path), with its attachments and event;
- `idempotency`: Idempotency-Keys, so a retried POST replays instead of acting twice;
- `attachments`: add files to a ticket, serve one;
- `queries`: one ticket, pages of tickets;
- `status`: statuses move forward only, with a timeline entry and an event each.
"""

from intake.tickets.attachments import StoredFile, add_attachments, get_attachment
from intake.tickets.files import Upload
from intake.tickets.filing import PRODUCER, Filed, file_ticket, request_hash
from intake.tickets.idempotency import prune_idempotency_keys
from intake.tickets.queries import TicketFilter, get_ticket, list_tickets
from intake.tickets.status import advance, close_ticket, note
from intake.tickets.wording import next_steps

__all__ = [
    "PRODUCER",
    "Filed",
    "StoredFile",
    "TicketFilter",
    "Upload",
    "add_attachments",
    "advance",
    "close_ticket",
    "file_ticket",
    "get_attachment",
    "get_ticket",
    "list_tickets",
    "next_steps",
    "note",
    "prune_idempotency_keys",
    "request_hash",
]
