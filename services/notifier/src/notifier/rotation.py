"""Who is on call when: rotations, layers, restrictions and overrides, as pure functions.

Times are computed in the schedule's zone with `zoneinfo`. A shift of days or weeks
hands off at the rotation start's wall-clock time (09:00 stays 09:00 across a DST
change, so such a shift is 23 or 25 hours long on the change's day); a shift of hours
is that many real hours. A higher layer covers the ones below it wherever it has
someone; an override covers every layer.
"""

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

UNIT_DAYS = {"days": 1, "weeks": 7}


@dataclass(frozen=True)
class Restriction:
    """The layer is on, on these weekdays (0 = Monday), from `start` to `end` local time
    (an `end` not after `start` runs past midnight into the next day)."""

    days: frozenset[int]
    start: time
    end: time

    def covers(self, local: datetime) -> bool:
        """True if the local wall-clock time `local` is inside this restriction."""
        clock = local.time()
        if self.start < self.end:
            return local.weekday() in self.days and self.start <= clock < self.end
        if local.weekday() in self.days and clock >= self.start:
            return True
        return (local.weekday() - 1) % 7 in self.days and clock < self.end


@dataclass(frozen=True)
class Layer:
    """One rotation of a schedule."""

    rotation_start: datetime
    """Naive: a wall-clock time in the schedule's zone."""
    shift_unit: str
    shift_count: int
    members: tuple[uuid.UUID, ...]
    restrictions: tuple[Restriction, ...] = ()

    def member_at(self, at: datetime, zone: ZoneInfo) -> uuid.UUID | None:
        """Who this layer has on call at the instant `at` (aware), or None."""
        if not self.members:
            return None
        local = at.astimezone(zone).replace(tzinfo=None)
        if self.restrictions and not any(r.covers(local) for r in self.restrictions):
            return None
        if self.shift_unit in UNIT_DAYS:
            length = timedelta(days=UNIT_DAYS[self.shift_unit] * self.shift_count)
            index = (local - self.rotation_start) // length
        else:
            start = self.rotation_start.replace(tzinfo=zone).astimezone(UTC)
            index = (at.astimezone(UTC) - start) // timedelta(hours=self.shift_count)
        return self.members[index % len(self.members)]

    def boundaries(self, start: datetime, end: datetime, zone: ZoneInfo) -> Iterator[datetime]:
        """Instants in [start, end) where this layer's answer may change."""
        if self.shift_unit in UNIT_DAYS:
            length = timedelta(days=UNIT_DAYS[self.shift_unit] * self.shift_count)
            local_start = start.astimezone(zone).replace(tzinfo=None)
            k = (local_start - self.rotation_start) // length
            while True:
                handoff = _aware(self.rotation_start + k * length, zone)
                if handoff >= end:
                    break
                if handoff >= start:
                    yield handoff
                k += 1
        else:
            first = self.rotation_start.replace(tzinfo=zone).astimezone(UTC)
            length = timedelta(hours=self.shift_count)
            k = (start - first) // length
            while (handoff := first + k * length) < end:
                if handoff >= start:
                    yield handoff
                k += 1
        if not self.restrictions:
            return
        day = start.astimezone(zone).date() - timedelta(days=1)
        while _aware(datetime.combine(day, time()), zone) < end:
            for restriction in self.restrictions:
                for clock in (restriction.start, restriction.end):
                    instant = _aware(datetime.combine(day, clock), zone)
                    if start <= instant < end:
                        yield instant
            day += timedelta(days=1)


def _aware(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time (the earlier one if it is ambiguous; a
    time skipped by DST is read with the offset before the change)."""
    return local.replace(tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Override:
    """`person_id` covers the schedule in [starts_at, ends_at)."""

    person_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Schedule:
    """A schedule's layers (lowest first) and overrides."""

    zone: ZoneInfo
    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...] = ()

    def oncall_at(self, at: datetime) -> uuid.UUID | None:
        """Who is on call at the instant `at`, or None (a gap)."""
        for override in self.overrides:
            if override.starts_at <= at < override.ends_at:
                return override.person_id
        for layer in reversed(self.layers):
            member = layer.member_at(at, self.zone)
            if member is not None:
                return member
        return None

    def shifts(self, start: datetime, end: datetime) -> list["Shift"]:
        """Who is on call over [start, end), as consecutive shifts (a gap has no person)."""
        points = {start}
        for layer in self.layers:
            points.update(layer.boundaries(start, end, self.zone))
        for override in self.overrides:
            points.update(p for p in (override.starts_at, override.ends_at) if start <= p < end)
        ordered = sorted(points)
        shifts: list[Shift] = []
        for index, point in enumerate(ordered):
            until = ordered[index + 1] if index + 1 < len(ordered) else end
            who = self.oncall_at(point)
            if shifts and shifts[-1].person_id == who:
                shifts[-1] = Shift(who, shifts[-1].starts_at, until)
            else:
                shifts.append(Shift(who, point, until))
        return shifts


@dataclass(frozen=True)
class Shift:
    """`person_id` (None: nobody) is on call in [starts_at, ends_at)."""

    person_id: uuid.UUID | None
    starts_at: datetime
    ends_at: datetime


def gaps(shifts: Sequence[Shift]) -> list[Shift]:
    """The shifts with nobody on call."""
    return [shift for shift in shifts if shift.person_id is None]
