"""Business hours: a weekly schedule in one time zone, with holidays. Pure: no clock, no Redis.

``BusinessHours.is_open(at)`` and ``next_opening(at)`` take an aware ``datetime``
(or seconds since the epoch) and answer in the schedule's zone, so daylight
saving changes and holidays are the zone database's business, and a test passes
explicit datetimes. ``open_seconds`` and ``after_open_time`` measure clocks that
run only while the desk is open (``[business_hours] pause_auto_close`` / ``pause_sla``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterator
from zoneinfo import ZoneInfo

__all__ = ["BusinessHours", "DAYS", "parse_ranges", "format_opening"]

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

# How far ahead ``next_opening`` looks: a year and a week covers any schedule with one open day.
_HORIZON_DAYS = 373


def parse_ranges(text: str) -> tuple[tuple[int, int], ...] | None:
    """``"09:00-12:30, 13:30-17:00"`` as minutes since midnight, sorted; ``"closed"`` or ``""`` is none;
    None when unreadable (an end before its start, 25:00, overlaps)."""
    if text.strip().lower() in ("", "closed"):
        return ()
    ranges = []
    for part in text.split(","):
        match = _RANGE.match(part)
        if not match:
            return None
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if m1 > 59 or m2 > 59 or start >= 24 * 60 or end > 24 * 60 or end <= start:
            return None
        ranges.append((start, end))
    ranges.sort()
    if any(a[1] > b[0] for a, b in zip(ranges, ranges[1:])):
        return None
    return tuple(ranges)


def _as_datetime(at: datetime | float) -> datetime:
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("business hours need an aware datetime (with a time zone)")
        return at
    return datetime.fromtimestamp(at, tz=timezone.utc)


@dataclass(frozen=True)
class BusinessHours:
    """The desk's opening hours. With no day open at all (``enabled`` False) it is always open."""

    timezone: str = "UTC"
    # Day of the week (0 Monday .. 6 Sunday) -> open ranges, minutes since local midnight.
    week: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    away_message: str = ("We are closed right now. We will answer as soon as we open again "
                         "({next_opening}); your message is in the queue.")
    # Channel name -> its own away message (``away_message_<channel>``).
    away_messages: dict[str, str] = field(default_factory=dict)
    # Whether the auto-close and SLA clocks stop while closed.
    pause_auto_close: bool = False
    pause_sla: bool = True

    @property
    def enabled(self) -> bool:
        return any(self.week.values())

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _intervals(self, start_day: date, days: int) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals (aware, in UTC: arithmetic between datetimes of one zone ignores DST) of ``days``
        local days from ``start_day``, in order."""
        zone = self.zone
        for offset in range(days):
            day = start_day + timedelta(days=offset)
            if day in self.holidays:
                continue
            for start, end in self.week.get(day.weekday(), ()):
                opens = datetime.combine(day, time(start // 60, start % 60), tzinfo=zone)
                if end == 24 * 60:
                    closes = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
                else:
                    closes = datetime.combine(day, time(end // 60, end % 60), tzinfo=zone)
                # Compare as instants: a local time in a DST gap or fold maps to one instant.
                opens_utc, closes_utc = opens.astimezone(timezone.utc), closes.astimezone(timezone.utc)
                if closes_utc > opens_utc:
                    yield opens_utc, closes_utc

    def is_open(self, at: datetime | float) -> bool:
        """Whether the desk is open at ``at``."""
        if not self.enabled:
            return True
        moment = _as_datetime(at).astimezone(timezone.utc)
        local_day = moment.astimezone(self.zone).date()
        return any(opens <= moment < closes for opens, closes in self._intervals(local_day - timedelta(days=1), 2))

    def next_opening(self, at: datetime | float) -> datetime | None:
        """When the desk next opens at or after ``at`` (``at`` itself while open), in the zone; None if never."""
        moment = _as_datetime(at).astimezone(timezone.utc)
        if not self.enabled:
            return moment.astimezone(self.zone)
        local_day = moment.astimezone(self.zone).date()
        for opens, closes in self._intervals(local_day - timedelta(days=1), _HORIZON_DAYS):
            if closes <= moment:
                continue
            return max(opens, moment).astimezone(self.zone)
        return None

    def open_seconds(self, start: datetime | float, end: datetime | float) -> float:
        """Seconds the desk is open between ``start`` and ``end``."""
        a, b = _as_datetime(start).astimezone(timezone.utc), _as_datetime(end).astimezone(timezone.utc)
        if b <= a:
            return 0.0
        if not self.enabled:
            return (b - a).total_seconds()
        total = 0.0
        first = a.astimezone(self.zone).date() - timedelta(days=1)
        days = (b.astimezone(self.zone).date() - first).days + 1
        for opens, closes in self._intervals(first, days):
            lo, hi = max(opens, a), min(closes, b)
            if hi > lo:
                total += (hi - lo).total_seconds()
        return total

    def after_open_time(self, start: datetime | float, seconds: float) -> datetime | None:
        """The moment ``seconds`` of open time have passed since ``start``; None if it never opens."""
        a = _as_datetime(start).astimezone(timezone.utc)
        if not self.enabled:
            return a + timedelta(seconds=seconds)
        left = seconds
        for opens, closes in self._intervals(a.astimezone(self.zone).date() - timedelta(days=1), _HORIZON_DAYS):
            if closes <= a:
                continue
            lo = max(opens, a)
            span = (closes - lo).total_seconds()
            if span >= left:
                return (lo + timedelta(seconds=left)).astimezone(self.zone)
            left -= span
        return None

    def delay(self, now: float, seconds: float, paused: bool) -> float:
        """How long from ``now`` a clock of ``seconds`` runs: wall time, or open time when ``paused``."""
        if not paused or not self.enabled:
            return seconds
        due = self.after_open_time(now, seconds)
        if due is None:
            return seconds
        return max(0.0, due.timestamp() - now)

    def away_text(self, channel: str, now: float) -> str:
        """The away message for ``channel`` at ``now``, its ``{next_opening}`` filled in."""
        template = self.away_messages.get(channel, self.away_message)
        opening = self.next_opening(now)
        return template.replace("{next_opening}", format_opening(opening, now) if opening else "soon")


def format_opening(opening: datetime, now: float) -> str:
    """``"today at 09:00"``, ``"tomorrow at 09:00"`` or ``"Monday 5 January at 09:00"``, plus the zone's
    abbreviation (``CET``), in the schedule's zone."""
    local_now = datetime.fromtimestamp(now, tz=opening.tzinfo)
    clock = opening.strftime("%H:%M")
    zone = opening.strftime("%Z")
    days = (opening.date() - local_now.date()).days
    if days == 0:
        when = f"today at {clock}"
    elif days == 1:
        when = f"tomorrow at {clock}"
    else:
        when = f"{opening.strftime('%A')} {opening.day} {opening.strftime('%B')} at {clock}"
    return f"{when} {zone}".strip()
