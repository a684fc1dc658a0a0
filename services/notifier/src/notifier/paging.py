"""Pages: open or join, notify a level, escalate (acknowledge and resolve: `actions`).

Guarantees: one open page per dedup key, enforced by the partial unique index
``uq_page_dedup_key_open`` (a trigger is an ``INSERT ... ON CONFLICT`` on it, never a
read then a write), so concurrent triggers for one outage make one page. The
escalation policy is copied onto the page when it opens. Each notification is a
delivery whose dedupe key names the page, round, level, person and channel, so a
replayed step sends nothing twice. The ladder's timer (kind ``escalate``, key the
page) carries the level and round it was set for; a stale firing does nothing.
States move forward only; doing again what is done is success. Nothing here commits.
Opening or joining a page: `triggering` (re-exported here).
"""

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.common import Person
from contracts.notifier import (
    PageEscalated,
    PageOpened,
    PageSource,
    Urgency,
)
from notifier import emails, link_secret, links, timeline
from notifier.models import page, page_ticket
from notifier.oncall import SENDABLE_CHANNELS, Contact, target_person
from notifier.settings import Settings
from notifier.triggering import grouped_or_monitor_page, trigger, trigger_for_ticket
from servicekit import timers
from servicekit.deliveries import enqueue
from servicekit.logging import current_correlation
from servicekit.outbox import publish

__all__ = [
    "ESCALATE",
    "escalate",
    "grouped_or_monitor_page",
    "notify",
    "raise_urgency",
    "start",
    "trigger",
    "trigger_for_ticket",
]

ESCALATE = "escalate"
"""Timer kind of a page's ladder; its key is the page id."""


async def start(
    session: AsyncSession,
    settings: Settings,
    row: Row[Any],
    *,
    causation: Envelope | None,
    ticket_ids: tuple[uuid.UUID, ...] = (),
    monitor_ids: tuple[uuid.UUID, ...] = (),
    tickets: list[dict[str, Any]] | None = None,
) -> None:
    """A page just opened (with `ticket_ids` on it): record it, publish ``page.opened``,
    notify level 1 and set the ladder's timer (high urgency only). `tickets`: the page's
    tickets (number, subject, reporter_name) if the caller knows them.

    The timeline's steps and ``page.opened`` are written by one statement."""
    levels = row.policy["levels"]
    notes = [
        (
            row.id,
            "opened",
            f"{row.source}: {row.summary} (policy {row.policy['name'] or 'none'},"
            f" {row.urgency} urgency)",
        )
    ]
    opened = Envelope.wrap(
        PageOpened(
            page_id=row.id,
            product=timeline.product_of(row),
            source=PageSource(row.source),
            summary=row.summary,
            urgency=Urgency(row.urgency),
            ticket_ids=ticket_ids,
            monitor_ids=monitor_ids,
            opened_at=row.opened_at,
        ),
        producer=timeline.PRODUCER,
        causation=causation,
        correlation_id=None if causation else current_correlation(),
    )
    await notify(session, settings, row, level=1, round_=1, tickets=tickets, notes=notes)
    await timeline.write_notes(session, notes, event=opened)
    if row.urgency == Urgency.HIGH and levels:
        await _set_timer(session, row.id, levels, level=1, round_=1)


async def raise_urgency(session: AsyncSession, row: Row[Any], reason: str) -> None:
    """A low-urgency page becomes high (a CRITICAL ticket joined): its ladder starts."""
    raised = (
        await session.execute(
            update(page)
            .where(page.c.id == row.id, page.c.urgency == Urgency.LOW, page.c.state == "triggered")
            .values(urgency=Urgency.HIGH.value)
            .returning(page.c.id)
        )
    ).first()
    if raised and row.policy["levels"]:
        await timeline.note(session, row.id, "urgency_raised", reason)
        await _set_timer(session, row.id, row.policy["levels"], level=row.level, round_=row.round)


async def _set_timer(
    session: AsyncSession,
    page_id: uuid.UUID,
    levels: list[dict[str, Any]],
    *,
    level: int,
    round_: int,
) -> None:
    timeout_s = float(levels[level - 1]["timeout_s"])
    await timers.schedule(
        session,
        kind=ESCALATE,
        key=str(page_id),
        due_at=timeline.now() + timedelta(seconds=timeout_s),
        payload={"page_id": str(page_id), "level": level, "round": round_},
    )


async def notify(
    session: AsyncSession,
    settings: Settings,
    row: Row[Any],
    *,
    level: int,
    round_: int,
    reason: str = "",
    step: str = "",
    tickets: list[dict[str, Any]] | None = None,
    notes: list[tuple[uuid.UUID, str, str]] | None = None,
) -> Contact | None:
    """Queue the notifications of one level of a page's ladder; returns whom they reach.

    `step` tells apart notifications of one level and round that are meant to repeat (a
    deadline escalating to the top level again). `tickets`: the page's tickets if the
    caller knows them (else read here). `notes`: where to append the timeline's steps for
    the caller to write (else written here)."""
    pending: list[tuple[uuid.UUID, str, str]] = [] if notes is None else notes
    who = await _notify(session, settings, row, level, round_, reason, step, tickets, pending)
    if notes is None and pending:
        await timeline.write_notes(session, pending)
    return who


async def _notify(
    session: AsyncSession,
    settings: Settings,
    row: Row[Any],
    level: int,
    round_: int,
    reason: str,
    step: str,
    tickets: list[dict[str, Any]] | None,
    notes: list[tuple[uuid.UUID, str, str]],
) -> Contact | None:
    levels = row.policy["levels"]
    if not levels:
        notes.append((row.id, "nobody", "no escalation policy: nobody to notify"))
        return None
    who = await target_person(session, levels[level - 1], timeline.now())
    if who is None:
        notes.append((row.id, "nobody", f"level {level}: nobody on call"))
        return None
    if tickets is None:
        query = (
            select(page_ticket)
            .where(page_ticket.c.page_id == row.id)
            .order_by(page_ticket.c.joined_at)
            .limit(50)
        )
        tickets = [t._asdict() for t in (await session.execute(query)).all()]
    queued = []
    secret = link_secret.current(settings)
    for channel, delay_s in who.rules:
        address = who.address(channel)
        if channel not in SENDABLE_CHANNELS or not address:
            why = "no sender for it yet" if address else f"{who.name} has no {channel} address"
            notes.append((row.id, "not_sent", f"{channel} to {who.name}: {why}"))
            continue
        key = f"page:{row.id}:r{round_}:l{level}:{who.id}:{channel}:{delay_s}"
        if step:
            key = f"{key}:{step}"
        context = {
            "heading": f"[Klaxon] {row.product_name}: {row.summary}"[:200],
            "product_name": row.product_name,
            "summary": row.summary,
            "opened_at": emails.fmt_time(row.opened_at),
            "level": level,
            "round": round_,
            "reason": reason,
            "tickets": tickets,
            "ack_url": links.action_url(
                settings, secret, page_id=row.id, action="acknowledge", person_id=who.id
            ),
            "resolve_url": links.action_url(
                settings, secret, page_id=row.id, action="resolve", person_id=who.id
            ),
        }
        payload = emails.render(
            settings,
            template="page",
            to=address,
            subject=f"[Klaxon] {row.product_name}: {row.summary}"[:250],
            dedupe_key=key,
            thread=emails.page_thread(settings, row.id),
            is_thread_start=(level, round_) == (1, 1) and delay_s == 0,
            context=context,
            meta={
                "purpose": "page",
                "page_id": str(row.id),
                "person_id": str(who.id),
                "person_name": who.name,
                "level": level,
                "round": round_,
                "skip_unless_triggered": delay_s > 0,
            },
        )
        due_at = timeline.now() + timedelta(seconds=delay_s) if delay_s else None
        await enqueue(session, channel=channel, dedupe_key=key, payload=payload, due_at=due_at)
        queued.append(f"{channel}" + (f" after {delay_s} s" if delay_s else ""))
    notes.append(
        (
            row.id,
            "notifying",
            f"level {level} round {round_}: {who.name} by {', '.join(queued) or 'nothing'}",
        )
    )
    return who


async def escalate(
    session: AsyncSession,
    settings: Settings,
    page_id: uuid.UUID,
    *,
    reason: str,
    causation: Envelope | None,
    expected: tuple[int, int] | None = None,
    step: str = "",
) -> bool:
    """Move a page's ladder on and notify the new level.

    With `expected` (the timer's level and round) it acts only if the page is still
    triggered at that step, and goes past the top level into the next round (or stops
    when the rounds are spent). Without it (a deadline passed) it goes to the next level,
    repeating the top one, whatever the state, unless resolved.
    """
    row = await timeline.locked_page(session, page_id)
    if row is None or row.state == "resolved":
        return False
    levels = row.policy["levels"]
    if not levels:
        return False
    if expected is not None:
        if row.state != "triggered" or (row.level, row.round) != expected:
            return False
        if row.level < len(levels):
            level, round_ = row.level + 1, row.round
        elif row.round <= row.policy["repeat"]:
            level, round_ = 1, row.round + 1
        else:
            await timeline.note(
                session, row.id, "ladder_exhausted", "every level was paged; nobody acknowledged"
            )
            return False
    else:
        level, round_ = min(row.level + 1, len(levels)), row.round
    await session.execute(update(page).where(page.c.id == row.id).values(level=level, round=round_))
    await timeline.note(
        session, row.id, "escalated", f"level {row.level} -> {level} (round {round_}): {reason}"
    )
    who = await notify(session, settings, row, level=level, round_=round_, reason=reason, step=step)
    await publish(
        session,
        PageEscalated(
            page_id=row.id,
            product=timeline.product_of(row),
            from_level=row.level,
            to_level=level,
            oncall=Person(name=who.name, email=who.email)
            if who and who.email
            else timeline.klaxon_person(settings, who.name if who else "nobody on call"),
            reason=reason,
            ticket_ids=await timeline.ticket_ids(session, row.id),
            escalated_at=timeline.now(),
        ),
        producer=timeline.PRODUCER,
        causation=causation,
    )
    if row.state == "triggered" and row.urgency == Urgency.HIGH:
        await _set_timer(session, row.id, levels, level=level, round_=round_)
    return True
