"""Reading and writing the human durations, day offsets and clock times of schedules.yaml."""

from __future__ import annotations

import re
from datetime import time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reminders.durations import format_duration, parse_clock, parse_day_offset, parse_duration

CI = settings(max_examples=200, deadline=None, database=None)

#: Unit sizes as SPEC and schedules.yaml use them, largest first.
UNITS = (
    ("week", timedelta(weeks=1)),
    ("day", timedelta(days=1)),
    ("hour", timedelta(hours=1)),
    ("minute", timedelta(minutes=1)),
)


def quoted(text: object) -> str:
    """A regex matching ``text`` quoted the way the error messages quote it."""
    return re.escape(repr(text))


# --- parse_duration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 days", timedelta(days=2)),
        ("1 day", timedelta(days=1)),
        ("12 hours", timedelta(hours=12)),
        ("1 hour", timedelta(hours=1)),
        ("1 week", timedelta(weeks=1)),
        ("6 weeks", timedelta(weeks=6)),
        ("90 minutes", timedelta(minutes=90)),
        ("1 minute", timedelta(minutes=1)),
        ("3days", timedelta(days=3)),
        ("  36 Hours  ", timedelta(hours=36)),
        ("2 DAYS", timedelta(days=2)),
        ("0 days", timedelta(0)),
    ],
)
def test_parse_duration_reads_amount_and_unit(text: str, expected: timedelta) -> None:
    """Amount-then-unit durations read as that many units, any case, singular or plural."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2",
        "days",
        "two days",
        "2 fortnights",
        "2 seconds",
        "-1 day",
        "1.5 days",
        "2 days later",
        "day 2",
        "2 days 3 hours",
        "99999999999 weeks",  # beyond timedelta: must be a ValueError, not an OverflowError
        None,
        48,
    ],
)
def test_parse_duration_rejects_other_text_quoting_it(text: object) -> None:
    """Anything else raises ValueError whose message quotes the input."""
    with pytest.raises(ValueError, match=quoted(text)):
        parse_duration(text)


@CI
@given(amount=st.integers(0, 10_000), unit=st.sampled_from(UNITS), plural=st.booleans())
def test_parse_duration_scales_the_unit(
    amount: int, unit: tuple[str, timedelta], plural: bool
) -> None:
    """``"N unit"`` is N times the unit, with or without the plural ``s``."""
    name, size = unit
    assert parse_duration(f"{amount} {name}{'s' if plural else ''}") == amount * size


# --- parse_day_offset ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("day 1", 1),
        ("day 0", 0),
        ("Day 14", 14),
        ("week 6", 42),
        ("WEEK 1", 7),
        ("3 days", 3),
        ("1 day", 1),
        ("6 weeks", 42),
        ("  week 2  ", 14),
    ],
)
def test_parse_day_offset_reads_days_and_weeks(text: str, expected: int) -> None:
    """``day N``/``N days`` are N days after the anchor, ``week N``/``N weeks`` are 7N."""
    assert parse_day_offset(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "day",
        "week",
        "1",
        "tomorrow",
        "day -1",
        "day 1.5",
        "week six",
        "12 hours",
        "90 minutes",
        "hour 3",
        "day 1 week 2",
        None,
        7,
    ],
)
def test_parse_day_offset_rejects_other_text_quoting_it(text: object) -> None:
    """Hours, minutes, negatives and free text raise ValueError whose message quotes the input."""
    with pytest.raises(ValueError, match=quoted(text)):
        parse_day_offset(text)


@CI
@given(amount=st.integers(0, 520))
def test_parse_day_offset_agrees_between_both_word_orders(amount: int) -> None:
    """``day N`` equals ``N days`` equals N, and ``week N`` equals ``N weeks`` equals 7N."""
    assert parse_day_offset(f"day {amount}") == parse_day_offset(f"{amount} days") == amount
    assert parse_day_offset(f"week {amount}") == parse_day_offset(f"{amount} weeks") == 7 * amount


# --- parse_clock ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10:00", time(10, 0)),
        ("00:00", time(0, 0)),
        ("23:59", time(23, 59)),
        ("7:05", time(7, 5)),
        ("07:05", time(7, 5)),
        (" 18:30 ", time(18, 30)),
    ],
)
def test_parse_clock_reads_hours_and_minutes(text: str, expected: time) -> None:
    """``H:MM`` and ``HH:MM`` read as that wall-clock time."""
    assert parse_clock(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "10", "24:00", "12:60", "7:5", "10:00:60", "10h00", "10.00", "-1:00", "1000", None, 600],
)
def test_parse_clock_rejects_other_text_quoting_it(text: object) -> None:
    """Out-of-range or malformed times raise ValueError whose message quotes the input."""
    with pytest.raises(ValueError, match=quoted(text)):
        parse_clock(text)


@CI
@given(at=st.times().map(lambda t: t.replace(second=0, microsecond=0, fold=0)))
def test_parse_clock_reads_every_minute_of_the_day(at: time) -> None:
    """Every minute of the day written as ``HH:MM`` reads back as itself."""
    assert parse_clock(f"{at.hour:02d}:{at.minute:02d}") == at


# --- format_duration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(days=2), "2 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(days=14), "2 weeks"),
        (timedelta(weeks=1), "1 week"),
        (timedelta(hours=36), "36 hours"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(minutes=90), "90 minutes"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(seconds=90), "90 seconds"),
        (timedelta(seconds=1), "1 second"),
    ],
)
def test_format_duration_uses_the_largest_whole_unit(delta: timedelta, expected: str) -> None:
    """A duration is written in the largest unit that divides it, singular for one."""
    assert format_duration(delta) == expected


@CI
@given(minutes=st.integers(1, 60 * 24 * 7 * 520))
def test_format_duration_reads_back_and_uses_the_largest_unit(minutes: int) -> None:
    """What format_duration writes, parse_duration reads back, and no larger unit divides it."""
    delta = timedelta(minutes=minutes)
    text = format_duration(delta)
    assert parse_duration(text) == delta
    amount, name = text.split()
    size = dict(UNITS)[name.removesuffix("s")]
    larger = [s for _, s in UNITS if s > size]
    assert all(delta % s for s in larger)
    assert (name.endswith("s")) == (int(amount) != 1)


def test_day_offset_beyond_ten_years_is_rejected() -> None:
    """An offset past ten years is a ValueError quoting the input, not an overflow later in planning."""
    import pytest

    from reminders.durations import parse_day_offset

    assert parse_day_offset("week 520") == 3640
    with pytest.raises(ValueError, match="'week 999999'"):
        parse_day_offset("week 999999")


def test_clock_accepts_seconds() -> None:
    """``HH:MM:SS`` is read with its seconds (precise send times, near-future test schedules)."""
    from datetime import time

    from reminders.durations import parse_clock

    assert parse_clock("10:00:30") == time(10, 0, 30)
    assert parse_clock("10:00") == time(10, 0)
