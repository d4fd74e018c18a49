"""Business hours with explicit datetimes: weekly ranges, holidays, daylight saving; never the wall clock."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from gateway.hours import BusinessHours, format_opening, parse_ranges

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def desk(**extra) -> BusinessHours:
    week = {day: ((9 * 60, 12 * 60 + 30), (13 * 60 + 30, 17 * 60)) for day in range(5)}  # Mon-Fri
    week[5] = ((10 * 60, 14 * 60),)  # Saturday
    return BusinessHours(timezone="Europe/Paris", week=week,
                         holidays=frozenset({date(2026, 12, 25), date(2027, 1, 1)}), **extra)


def test_parse_ranges():
    assert parse_ranges("09:00-17:00") == ((540, 1020),)
    assert parse_ranges("13:30-18:00, 09:00-12:30") == ((540, 750), (810, 1080))
    assert parse_ranges("closed") == () and parse_ranges("") == ()
    assert parse_ranges("00:00-24:00") == ((0, 1440),)
    for bad in ("9-17", "17:00-09:00", "09:00-25:00", "09:00-12:00, 11:00-13:00", "09:61-10:00"):
        assert parse_ranges(bad) is None, bad


def test_open_within_ranges_and_closed_between_and_on_sunday():
    hours = desk()
    assert hours.is_open(paris(2026, 3, 2, 9, 0))  # a Monday, opening minute
    assert not hours.is_open(paris(2026, 3, 2, 8, 59, 59))
    assert not hours.is_open(paris(2026, 3, 2, 12, 45))  # lunch
    assert not hours.is_open(paris(2026, 3, 2, 17, 0))  # the end is exclusive
    assert hours.is_open(paris(2026, 3, 7, 11, 0))  # Saturday morning
    assert not hours.is_open(paris(2026, 3, 8, 11, 0))  # Sunday: no entry, closed
    # The same instant written in UTC.
    assert hours.is_open(datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc))
    assert hours.is_open(paris(2026, 3, 2, 10, 0).timestamp())


def test_next_opening_over_lunch_night_weekend_and_holidays():
    hours = desk()
    assert hours.next_opening(paris(2026, 3, 2, 12, 40)) == paris(2026, 3, 2, 13, 30)
    assert hours.next_opening(paris(2026, 3, 2, 18, 0)) == paris(2026, 3, 3, 9, 0)
    assert hours.next_opening(paris(2026, 3, 7, 15, 0)) == paris(2026, 3, 9, 9, 0)  # Sat afternoon -> Monday
    assert hours.next_opening(paris(2026, 3, 2, 10, 0)) == paris(2026, 3, 2, 10, 0)  # open now
    # Christmas Friday, then Saturday is open as usual.
    assert not hours.is_open(paris(2026, 12, 25, 10, 0))
    assert hours.next_opening(paris(2026, 12, 24, 17, 30)) == paris(2026, 12, 26, 10, 0)
    # New Year's Day (Friday) closed: Thursday evening -> Saturday 2 January.
    assert hours.next_opening(paris(2026, 12, 31, 20, 0)) == paris(2027, 1, 2, 10, 0)


def test_daylight_saving_changes_keep_local_opening_times():
    hours = desk()
    # Europe: clocks go forward on Sunday 29 March 2026; Monday opens at 09:00 CEST = 07:00 UTC.
    opening = hours.next_opening(paris(2026, 3, 28, 18, 0))
    assert opening == paris(2026, 3, 30, 9, 0)
    assert opening.astimezone(timezone.utc) == datetime(2026, 3, 30, 7, 0, tzinfo=timezone.utc)
    assert hours.is_open(datetime(2026, 3, 30, 7, 0, tzinfo=timezone.utc))
    assert not hours.is_open(datetime(2026, 3, 30, 7, 59, tzinfo=timezone.utc) - timedelta(hours=1))
    # Back on Sunday 25 October 2026: Monday 09:00 CET = 08:00 UTC.
    opening = hours.next_opening(paris(2026, 10, 24, 18, 0))
    assert opening.astimezone(timezone.utc) == datetime(2026, 10, 26, 8, 0, tzinfo=timezone.utc)
    assert not hours.is_open(datetime(2026, 10, 26, 7, 30, tzinfo=timezone.utc))


def test_a_range_inside_the_spring_forward_gap_and_a_night_shift():
    # 01:00-03:30 on a Sunday in New York; on 8 March 2026 02:00-03:00 does not exist.
    hours = BusinessHours(timezone="America/New_York", week={6: ((60, 210),)})
    start = datetime(2026, 3, 8, 1, 0, tzinfo=NEW_YORK)
    assert hours.is_open(start + timedelta(minutes=30))
    assert hours.open_seconds(start - timedelta(hours=1), start + timedelta(hours=5)) == 1.5 * 3600
    night = BusinessHours(timezone="Europe/Paris", week={4: ((22 * 60, 24 * 60),), 5: ((0, 6 * 60),)})
    assert night.is_open(paris(2026, 3, 6, 23, 59)) and night.is_open(paris(2026, 3, 7, 0, 0))
    assert night.next_opening(paris(2026, 3, 7, 7, 0)) == paris(2026, 3, 13, 22, 0)


def test_open_time_clocks_pause_while_closed():
    hours = desk()
    # 15 minutes of open time from 16:55 Friday: 5 today, 10 on Saturday from 10:00.
    due = hours.after_open_time(paris(2026, 3, 6, 16, 55), 15 * 60)
    assert due == paris(2026, 3, 7, 10, 10)
    assert hours.open_seconds(paris(2026, 3, 6, 16, 55), due) == 15 * 60
    now = paris(2026, 3, 6, 16, 55).timestamp()
    assert hours.delay(now, 900, paused=True) == due.timestamp() - now
    assert hours.delay(now, 900, paused=False) == 900
    assert BusinessHours().delay(now, 900, paused=True) == 900  # no schedule: always open


def test_away_message_names_the_next_opening_per_channel():
    hours = desk(away_message="Closed; back {next_opening}.", away_messages={"sms": "SMS: back {next_opening}"})
    friday_evening = paris(2026, 3, 6, 19, 0).timestamp()
    assert hours.away_text("telegram", friday_evening) == "Closed; back tomorrow at 10:00 CET."
    assert hours.away_text("sms", friday_evening) == "SMS: back tomorrow at 10:00 CET"
    saturday = paris(2026, 3, 7, 15, 0).timestamp()
    assert hours.away_text("telegram", saturday) == "Closed; back Monday 9 March at 09:00 CET."
    assert format_opening(paris(2026, 3, 9, 13, 30), paris(2026, 3, 9, 12, 45).timestamp()) == "today at 13:30 CET"


def test_no_schedule_is_always_open():
    hours = BusinessHours()
    assert not hours.enabled and hours.is_open(paris(2026, 12, 25, 3, 0))
