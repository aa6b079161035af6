"""Planning across IANA time zones: due times, DST gaps and overlaps, send windows, expiry.

Zones are the names a patient may have (those :func:`reminders.config.load_zone` accepts).
Three kinds of test check the time rules:

* examples at published instants (New York, London, Lord Howe, Auckland, Chatham, Apia);
* a sweep of every UTC-offset change of every zone from 1995 to 2037 (over ten thousand),
  checked against closed forms built from the offsets either side of each change; it scans
  the whole tz database, so it is marked ``slow``;
* hypothesis properties, which *sample*: each run draws a few hundred random zones, years
  and instants (a quarter to a third of them within hours of an offset change, plus the named
  days below) and compares the planner with an oracle written here from first principles.
  The oracle finds the UTC instants whose wall-clock reading is a given local time by
  trying every offset the zone uses nearby, and finds a DST gap by bisecting on the wall
  clock.

None of them relies on ``fold``, the mechanism :mod:`reminders.planning` is built on.
"""

from __future__ import annotations

import functools
import importlib.resources
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reminders.models import (
    Channel,
    Milestone,
    Patient,
    PlannedReminder,
    Protocol,
    Repeat,
    SendWindow,
)
from reminders.planning import (
    due_at,
    in_window,
    initial_status,
    next_window_open,
    plan,
    resolve_local,
)

#: Small, CI-friendly settings; no example database left in the working tree.
CI = settings(max_examples=200, deadline=None, database=None)

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
MINUTES_PER_DAY = 24 * 60
#: The years the sweep covers and the properties draw from.
YEARS = range(1995, 2038)
NY = ZoneInfo("America/New_York")
#: Named zones that turn their clocks back (northern, southern, 30-minute, +12:45).
OVERLAP_ZONES = (
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
)
#: Every zone name a patient or clinic may use: the names ``load_zone`` accepts. (Not
#: ``st.timezones()``: two draws in three of it are ``posix/`` copies or ``right/`` zones
#: that count leap seconds, none of which the product accepts.)
ZONE_NAMES: tuple[str, ...] = tuple(sorted(available_timezones()))
#: A random zone of :data:`ZONE_NAMES`.
ZONES = st.sampled_from(ZONE_NAMES).map(ZoneInfo)

#: The days the SPEC's DST rules are hardest on, named so each is always in the mix.
NAMED_DAYS: tuple[tuple[str, date], ...] = (
    ("America/New_York", date(2026, 3, 8)),  # gap 02:00 -> 03:00
    ("America/New_York", date(2026, 11, 1)),  # overlap 01:00-02:00 read twice
    ("Europe/London", date(2026, 3, 29)),  # gap 01:00 -> 02:00
    ("Europe/London", date(2026, 10, 25)),  # overlap 01:00-02:00
    ("Australia/Lord_Howe", date(2026, 10, 4)),  # 30-minute gap 02:00 -> 02:30
    ("Australia/Lord_Howe", date(2026, 4, 5)),  # 30-minute overlap 01:30-02:00
    ("Asia/Kolkata", date(2026, 3, 8)),  # +05:30, no DST at all
    ("Pacific/Auckland", date(2026, 9, 27)),  # southern spring: gap 02:00 -> 03:00
    ("Pacific/Auckland", date(2026, 4, 5)),  # southern autumn: overlap 02:00-03:00
    ("Pacific/Apia", date(2011, 12, 29)),
    ("Pacific/Apia", date(2011, 12, 30)),  # skipped: 29th 24:00 became 31st 00:00
    ("Pacific/Apia", date(2011, 12, 31)),
    ("Pacific/Chatham", date(2026, 9, 27)),  # +12:45 -> +13:45 at 02:45
    ("Pacific/Chatham", date(2026, 4, 5)),  # overlap 02:45-03:45
)


# --- oracle ---------------------------------------------------------------------------


def wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock reading of ``instant`` in ``zone``."""
    return instant.astimezone(zone).replace(tzinfo=None)


def as_utc(naive: datetime) -> datetime:
    """``naive`` read as a UTC instant (a starting point for offset arithmetic)."""
    return naive.replace(tzinfo=UTC)


def offsets_near(naive: datetime, zone: ZoneInfo) -> set[timedelta]:
    """Every UTC offset ``zone`` uses within about two days of wall time ``naive``."""
    probe = as_utc(naive)
    offsets = {(probe + timedelta(hours=h)).astimezone(zone).utcoffset() for h in range(-50, 51)}
    return {offset for offset in offsets if offset is not None}


def readings(naive: datetime, zone: ZoneInfo) -> list[datetime]:
    """Every UTC instant at which ``zone`` reads ``naive``: none in a gap, two in an overlap."""
    candidates = {as_utc(naive) - offset for offset in offsets_near(naive, zone)}
    return sorted(u for u in candidates if wall(u, zone) == naive)


def gap_around(naive: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """For a skipped wall time: the transition instant and the first wall time it skipped."""
    offsets = offsets_near(naive, zone)
    low = as_utc(naive) - max(offsets) - timedelta(hours=1)
    high = as_utc(naive) - min(offsets) + timedelta(hours=1)
    assert wall(low, zone) < naive < wall(high, zone)
    while high - low > SECOND:
        middle = low + SECOND * ((high - low) // SECOND // 2)
        if wall(middle, zone) > naive:
            high = middle
        else:
            low = middle
    return high, wall(low, zone) + SECOND


def spec_instant(naive: datetime, zone: ZoneInfo) -> datetime:
    """SPEC 6: the earliest reading of ``naive``; a skipped one moves forward by the gap."""
    found = readings(naive, zone)
    if found:
        return found[0]
    transition, first_skipped = gap_around(naive, zone)
    return transition + (naive - first_skipped)


def openings(day: date, window: SendWindow, zone: ZoneInfo) -> list[datetime]:
    """Instants at which the window opens on local ``day`` (its start, read or moved by a gap)."""
    naive = datetime.combine(day, window.start)
    return readings(naive, zone) or [spec_instant(naive, zone)]


def first_opening(instant: datetime, zone: ZoneInfo, window: SendWindow) -> datetime:
    """The earliest window opening at or after ``instant`` whose local time is in the window."""
    today = wall(instant, zone).date()
    return min(
        opening
        for days in range(-1, 5)
        for opening in openings(today + timedelta(days=days), window, zone)
        if opening >= instant and window.contains(wall(opening, zone).time())
    )


def at_minute(minutes: int) -> time:
    """The wall-clock time ``minutes`` after midnight."""
    return time(minutes // 60, minutes % 60)


# --- strategies ------------------------------------------------------------------------


#: Seconds between the probes that look for offset changes: one day. Two changes less than
#: a day apart that cancel out would go unseen; the closest two changes of a zone found in
#: 1995-2037 are about a week apart (the sweep asserts at least three days).
PROBE_SECONDS = 24 * 3600


@functools.cache
def transitions(zone: ZoneInfo, year: int) -> tuple[datetime, ...]:
    """UTC instants in ``year`` at which ``zone`` changes its offset (to the second).

    The offset is probed every :data:`PROBE_SECONDS` from 1 January 00:00 UTC to the next
    1 January, then each change is bisected to the second it takes effect.
    """
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    probes = range(start, end + 1, PROBE_SECONDS)
    offsets = [datetime.fromtimestamp(probe, zone).utcoffset() for probe in probes]
    found = []
    for k in range(1, len(offsets)):
        before = offsets[k - 1]
        if offsets[k] == before:
            continue
        low, high = probes[k - 1], probes[k]
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, zone).utcoffset() == before:
                low = middle
            else:
                high = middle
        found.append(datetime.fromtimestamp(high, UTC))
    return tuple(found)


@st.composite
def zone_moments(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    """A zone and a minute-aligned wall time, one of three kinds drawn equally often.

    ``named``: any minute of one of :data:`NAMED_DAYS`. ``transition``: within three hours
    of one offset change of a random zone in a random year of :data:`YEARS` (falling back
    to ``any`` when that zone made no change that year, as most zones did not). ``any``:
    any minute of a random year of :data:`YEARS` in a random zone. A run of a few hundred
    examples thus meets a few dozen of the database's offset changes, never all of them:
    the sweep further down is what walks every one.
    """
    kind = draw(st.sampled_from(["named", "transition", "any"]))
    if kind == "named":
        name, day = draw(st.sampled_from(NAMED_DAYS))
        minutes = draw(st.integers(0, MINUTES_PER_DAY - 1))
        return ZoneInfo(name), datetime.combine(day, at_minute(minutes))
    zone = draw(ZONES)
    year = draw(st.sampled_from(YEARS))
    changes = transitions(zone, year) if kind == "transition" else ()
    if changes:
        change = wall(draw(st.sampled_from(changes)), zone).replace(second=0, microsecond=0)
        return zone, change + timedelta(minutes=draw(st.integers(-180, 180)))
    minutes = draw(st.integers(0, 365 * MINUTES_PER_DAY - 1))
    return zone, datetime.combine(date(year, 1, 1), time()) + timedelta(minutes=minutes)


@st.composite
def windows(
    draw: st.DrawFn, around: time | None = None, containing: time | None = None
) -> SendWindow:
    """A send window (start before end on one day): office hours, arbitrary, or near ``around``.

    Near ``around`` it either starts within 90 minutes of it and ends any time later, or is
    short (at most an hour), so that it can lie wholly inside a DST gap or overlap.
    """
    kinds = ["office", "any"] + (["near", "short"] if around is not None else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "office":
        start = draw(st.integers(6 * 60, 10 * 60))
        end = draw(st.integers(17 * 60, 22 * 60))
    elif kind == "short":
        assert around is not None
        centre = around.hour * 60 + around.minute
        start = draw(st.integers(max(0, centre - 90), min(MINUTES_PER_DAY - 2, centre + 90)))
        end = draw(st.integers(start + 1, min(start + 60, MINUTES_PER_DAY - 1)))
    else:
        centre = 0 if around is None else around.hour * 60 + around.minute
        low = 0 if kind == "any" else max(0, centre - 90)
        high = MINUTES_PER_DAY - 2 if kind == "any" else min(MINUTES_PER_DAY - 2, centre + 90)
        start = draw(st.integers(low, high))
        end = draw(st.integers(start + 1, MINUTES_PER_DAY - 1))
    if containing is not None:
        inside = containing.hour * 60 + containing.minute
        start = min(start, inside)
        end = max(end, inside + 1)
    return SendWindow(at_minute(start), at_minute(min(end, MINUTES_PER_DAY - 1)))


# --- resolve_local -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "at", "expected"),
    [
        # gap 02:00 -> 03:00 EDT: 02:30 becomes 03:30 EDT
        (
            "America/New_York",
            date(2026, 3, 8),
            time(2, 30),
            datetime(2026, 3, 8, 7, 30, tzinfo=UTC),
        ),
        # overlap: 01:30 EDT (-04:00) comes before 01:30 EST
        (
            "America/New_York",
            date(2026, 11, 1),
            time(1, 30),
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        ),
        # a caller's fold=1 does not pick the later reading
        (
            "America/New_York",
            date(2026, 11, 1),
            time(1, 30, fold=1),
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        ),
        ("Europe/London", date(2026, 3, 29), time(1, 30), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        (
            "Europe/London",
            date(2026, 10, 25),
            time(1, 30),
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        ),
        # Lord Howe's 30-minute gap: 02:10 +10:30 becomes 02:40 +11:00
        (
            "Australia/Lord_Howe",
            date(2026, 10, 4),
            time(2, 10),
            datetime(2026, 10, 3, 15, 40, tzinfo=UTC),
        ),
        # ... and its 30-minute overlap: 01:45 +11:00 first
        (
            "Australia/Lord_Howe",
            date(2026, 4, 5),
            time(1, 45),
            datetime(2026, 4, 4, 14, 45, tzinfo=UTC),
        ),
        ("Asia/Kolkata", date(2026, 3, 8), time(10, 0), datetime(2026, 3, 8, 4, 30, tzinfo=UTC)),
        # southern hemisphere: spring gap in September, autumn overlap in April
        (
            "Pacific/Auckland",
            date(2026, 9, 27),
            time(2, 30),
            datetime(2026, 9, 26, 14, 30, tzinfo=UTC),
        ),
        (
            "Pacific/Auckland",
            date(2026, 4, 5),
            time(2, 30),
            datetime(2026, 4, 4, 13, 30, tzinfo=UTC),
        ),
        # the skipped day: 10:00 on the 30th is 10:00 on the 31st (+14:00)
        (
            "Pacific/Apia",
            date(2011, 12, 30),
            time(10, 0),
            datetime(2011, 12, 30, 20, 0, tzinfo=UTC),
        ),
        (
            "Pacific/Apia",
            date(2011, 12, 31),
            time(10, 0),
            datetime(2011, 12, 30, 20, 0, tzinfo=UTC),
        ),
        # Chatham +12:45: gap 02:45 -> 03:45, so 03:00 becomes 04:00 +13:45
        (
            "Pacific/Chatham",
            date(2026, 9, 27),
            time(3, 0),
            datetime(2026, 9, 26, 14, 15, tzinfo=UTC),
        ),
        ("Pacific/Chatham", date(2026, 4, 5), time(3, 0), datetime(2026, 4, 4, 13, 15, tzinfo=UTC)),
    ],
)
def test_resolve_local_known_transitions(
    zone: str, day: date, at: time, expected: datetime
) -> None:
    """Known DST days resolve to the published instants: gap moves forward, overlap reads first."""
    assert resolve_local(day, at, ZoneInfo(zone)) == expected


@CI
@given(moment=zone_moments())
def test_resolve_local_reads_the_wall_time_or_moves_forward_by_the_gap(
    moment: tuple[ZoneInfo, datetime],
) -> None:
    """A wall time resolves to its earliest reading, or, when skipped, to itself plus the gap."""
    zone, naive = moment
    instant = resolve_local(naive.date(), naive.time(), zone)

    assert instant.tzinfo is UTC
    found = readings(naive, zone)
    if found:
        assert instant == found[0]
        assert wall(instant, zone) == naive
    else:
        transition, first_skipped = gap_around(naive, zone)
        gap = wall(transition, zone) - first_skipped
        assert gap > timedelta(0)
        assert wall(instant, zone) - naive == gap
        assert instant >= transition


# --- next_window_open --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "window", "instant", "expected"),
    [
        # before the window: same day's start (08:00 BST)
        (
            "Europe/London",
            SendWindow(time(8), time(20)),
            datetime(2026, 6, 1, 6, 0, tzinfo=UTC),
            datetime(2026, 6, 1, 7, 0, tzinfo=UTC),
        ),
        # after the window: next day's start
        (
            "Europe/London",
            SendWindow(time(8), time(20)),
            datetime(2026, 6, 1, 19, 30, tzinfo=UTC),
            datetime(2026, 6, 2, 7, 0, tzinfo=UTC),
        ),
        # inside: unchanged
        (
            "Europe/London",
            SendWindow(time(8), time(20)),
            datetime(2026, 6, 1, 12, 34, 56, tzinfo=UTC),
            datetime(2026, 6, 1, 12, 34, 56, tzinfo=UTC),
        ),
        # 01:10 EST (second pass of the overlap): the second 01:30 is 20 minutes away
        (
            "America/New_York",
            SendWindow(time(1, 30), time(20)),
            datetime(2026, 11, 1, 6, 10, tzinfo=UTC),
            datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        ),
        # 01:40 EDT, past a 01:00-01:20 window: it opens again at 01:00 EST
        (
            "America/New_York",
            SendWindow(time(1), time(1, 20)),
            datetime(2026, 11, 1, 5, 40, tzinfo=UTC),
            datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
        ),
        # a start in the gap opens the window the gap later: 02:30 -> 03:30 EDT
        (
            "America/New_York",
            SendWindow(time(2, 30), time(20)),
            datetime(2026, 3, 8, 5, 0, tzinfo=UTC),
            datetime(2026, 3, 8, 7, 30, tzinfo=UTC),
        ),
        # after the window on the 29th, the 30th is skipped: 08:00 on the 31st (+14:00)
        (
            "Pacific/Apia",
            SendWindow(time(8), time(9)),
            datetime(2011, 12, 29, 20, 0, tzinfo=UTC),
            datetime(2011, 12, 30, 18, 0, tzinfo=UTC),
        ),
    ],
)
def test_next_window_open_examples(
    zone: str, window: SendWindow, instant: datetime, expected: datetime
) -> None:
    """Known instants wait for the window exactly as long as the local clock says."""
    assert next_window_open(instant, ZoneInfo(zone), window) == expected


@pytest.mark.parametrize(
    "instant",
    [
        datetime(2027, 3, 14, 6, 30, tzinfo=UTC),  # 01:30 EST, before the gap that day
        datetime(2027, 3, 13, 8, 0, tzinfo=UTC),  # 03:00 EST the day before, window closed
    ],
)
def test_next_window_open_skips_a_day_on_which_the_whole_window_is_skipped(
    instant: datetime,
) -> None:
    """A 02:00-02:30 window never opens on New York's 2027-03-14 (02:00 -> 03:00): it opens 02:00 the next day.

    Catches: an opening taken without checking that it falls inside the window (02:00 that
    day resolves to 03:00 EDT, past the window's end).
    """
    window = SendWindow(time(2), time(2, 30))
    expected = datetime(2027, 3, 15, 6, 0, tzinfo=UTC)
    assert wall(expected, NY) == datetime.combine(date(2027, 3, 15), time(2))  # 02:00 EDT
    assert next_window_open(instant, NY, window) == expected


@CI
@given(data=st.data())
def test_next_window_open_is_the_first_opening_at_or_after_the_instant(data: st.DataObject) -> None:
    """The result is at or after the input, inside the window, and no opening lies in between."""
    zone, naive = data.draw(zone_moments())
    # Start from either reading of a nearby wall time, so both passes of an overlap occur.
    nearby = naive + timedelta(minutes=data.draw(st.integers(-60, 60)))
    near = data.draw(st.sampled_from(readings(nearby, zone) or [spec_instant(nearby, zone)]))
    reach = data.draw(st.sampled_from([timedelta(0), timedelta(hours=3), timedelta(hours=30)]))
    instant = near + data.draw(st.timedeltas(-reach, reach))
    window = data.draw(windows(around=naive.time()))

    result = next_window_open(instant, zone, window)

    assert result.tzinfo is UTC
    assert result >= instant
    assert window.contains(wall(result, zone).time())
    if window.contains(wall(instant, zone).time()):
        assert result == instant
    else:
        assert result == first_opening(instant, zone, window)


@st.composite
def fall_backs(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    """A zone and an instant at which its clock goes back (the start of a DST overlap).

    The zone is one of :data:`OVERLAP_ZONES` or a random one, the change one of its clock-back
    changes in a random year of :data:`YEARS`; New York's that year if it made none.
    """
    zone = draw(st.one_of(st.sampled_from(OVERLAP_ZONES).map(ZoneInfo), ZONES))
    year = draw(st.sampled_from(YEARS))
    backs = [t for t in transitions(zone, year) if wall(t, zone) < wall(t - SECOND, zone)]
    if not backs:
        zone = NY
        backs = [t for t in transitions(NY, year) if wall(t, NY) < wall(t - SECOND, NY)]
    return zone, draw(st.sampled_from(backs))


@CI
@given(data=st.data())
def test_next_window_open_finds_the_second_reading_of_a_start_inside_an_overlap(
    data: st.DataObject,
) -> None:
    """Between two readings of a start repeated by an overlap, the window opens at the second."""
    zone, transition = data.draw(fall_backs())
    repeated_from = wall(transition, zone)
    repeated_to = wall(transition - SECOND, zone) + SECOND
    span = (repeated_to - repeated_from) // timedelta(minutes=1)
    assume(span >= 2)
    start = repeated_from + timedelta(minutes=data.draw(st.integers(1, span - 1)))
    assume(start.date() == repeated_from.date() and start.time() < time(23, 58))
    first_reading, second_reading = readings(start, zone)
    instant = first_reading + SECOND * data.draw(
        st.integers(1, (second_reading - first_reading) // SECOND - 1)
    )
    local = wall(instant, zone)
    start_minute = start.hour * 60 + start.minute
    if local.time() >= start.time():
        # first pass, past the start: the window must already have closed
        latest_end = min(local.hour * 60 + local.minute, MINUTES_PER_DAY - 1)
        assume(latest_end > start_minute)
        end = data.draw(st.integers(start_minute + 1, latest_end))
    else:
        end = data.draw(st.integers(start_minute + 1, MINUTES_PER_DAY - 1))
    window = SendWindow(start.time(), at_minute(end))
    assert not window.contains(local.time())

    assert next_window_open(instant, zone, window) == second_reading


@CI
@given(data=st.data())
def test_in_window_agrees_with_the_local_clock(data: st.DataObject) -> None:
    """``in_window`` is true exactly when the local wall time is in [start, end)."""
    zone, naive = data.draw(zone_moments())
    window = data.draw(windows(around=naive.time()))
    instant = as_utc(naive) + data.draw(st.timedeltas(timedelta(hours=-30), timedelta(hours=30)))
    local = wall(instant, zone).time()
    assert in_window(instant, zone, window) == (window.start <= local < window.end)


# --- due_at --------------------------------------------------------------------------------


@CI
@given(data=st.data())
def test_due_at_is_the_send_time_on_the_offset_day_unless_it_does_not_exist(
    data: st.DataObject,
) -> None:
    """Due is send time on anchor+offset (earliest if repeated, gap later if skipped), in window."""
    zone, naive = data.draw(zone_moments())
    send_time = naive.time()
    assume(send_time < time(23, 59))  # the window's end is exclusive and at most 23:59
    window = data.draw(windows(around=send_time, containing=send_time))
    offset = data.draw(st.integers(0, 400))
    anchor = naive.date() - timedelta(days=offset)

    due = due_at(anchor, offset, send_time, zone, window)

    assert due.tzinfo is UTC
    assert window.contains(wall(due, zone).time())
    found = readings(naive, zone)
    if found:
        assert due == found[0]
        assert wall(due, zone) == naive
        return
    transition, first_skipped = gap_around(naive, zone)
    gap = wall(transition, zone) - first_skipped
    moved = transition + (naive - first_skipped)
    if window.contains(wall(moved, zone).time()):
        assert due == moved
        assert wall(due, zone) - naive == gap
    else:
        assert due == first_opening(moved, zone, window)
    assert due >= transition


@pytest.mark.parametrize(
    ("send_time", "expected"),
    [
        (time(7, 0), datetime(2026, 6, 1, 12, 0, tzinfo=UTC)),  # before: 08:00 EDT same day
        (time(21, 0), datetime(2026, 6, 2, 12, 0, tzinfo=UTC)),  # after: 08:00 EDT next day
        (time(19, 59), datetime(2026, 6, 1, 23, 59, tzinfo=UTC)),  # last minute inside
        (time(20, 0), datetime(2026, 6, 2, 12, 0, tzinfo=UTC)),  # end is exclusive
    ],
)
def test_due_at_waits_for_the_send_window(send_time: time, expected: datetime) -> None:
    """A send time outside the window is held until the window's next opening."""
    window = SendWindow(time(8), time(20))
    assert due_at(date(2026, 5, 31), 1, send_time, NY, window) == expected


def test_due_at_on_a_skipped_day_goes_out_at_the_same_local_time_next_day() -> None:
    """An occurrence due on Apia's skipped 2011-12-30 is due at the same wall time on the 31st."""
    apia = ZoneInfo("Pacific/Apia")
    window = SendWindow(time(8), time(20))
    due = due_at(date(2011, 12, 20), 10, time(10), apia, window)
    assert due.astimezone(apia).replace(tzinfo=None) == datetime.combine(
        date(2011, 12, 31), time(10)
    )


# --- every offset change, 1995-2037 ---------------------------------------------------------


def tz_data(name: str) -> bytes:
    """The tz data file zoneinfo loads for ``name``: the first on ``zoneinfo.TZPATH``, else tzdata's."""
    for folder in zoneinfo.TZPATH:
        path = Path(folder, name)
        if path.is_file():
            return path.read_bytes()
    return importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).read_bytes()


@dataclass(frozen=True)
class Change:
    """One change of a zone's UTC offset."""

    #: The zone.
    zone: ZoneInfo
    #: First UTC instant of the new offset.
    at: datetime
    #: Offset before the change.
    before: timedelta
    #: Offset from the change on.
    after: timedelta
    #: UTC instants of the zone's previous and next change in range, if any.
    neighbours: tuple[datetime, ...]

    @property
    def old_wall(self) -> datetime:
        """The wall time the old offset would read at the change."""
        return self.at.replace(tzinfo=None) + self.before

    @property
    def new_wall(self) -> datetime:
        """The wall time the zone reads at the change."""
        return self.at.replace(tzinfo=None) + self.after

    def __str__(self) -> str:
        return f"{self.zone.key} at {self.at:%Y-%m-%dT%H:%M:%SZ} ({self.before} -> {self.after})"


@functools.cache
def every_change() -> tuple[Change, ...]:
    """Every offset change in :data:`YEARS` of one zone per distinct data file of ZONE_NAMES.

    Names that share a data file (links such as ``US/Eastern``) share every change, so
    each file is walked once.
    """
    first_name: dict[bytes, str] = {}
    for name in ZONE_NAMES:
        first_name.setdefault(tz_data(name), name)
    found = []
    for name in first_name.values():
        zone = ZoneInfo(name)
        ats = [at for year in YEARS for at in transitions(zone, year)]
        for k, at in enumerate(ats):
            before, after = (
                (at - SECOND).astimezone(zone).utcoffset(),
                at.astimezone(zone).utcoffset(),
            )
            assert before is not None
            assert after is not None
            found.append(
                Change(zone, at, before, after, tuple(ats[max(0, k - 1) : k] + ats[k + 1 : k + 2]))
            )
    return tuple(found)


def ceil_minute(naive: datetime) -> datetime:
    """``naive`` rounded up to a whole minute."""
    floor = naive.replace(second=0, microsecond=0)
    return floor if floor == naive else floor + MINUTE


@pytest.mark.slow
def test_offset_changes_1995_2037_are_isolated_and_on_whole_minutes() -> None:
    """Every offset change 1995-2037 falls on a whole minute, three days or more from its zone's others, as the sweep assumes."""
    changes = every_change()
    assert len(changes) > 10_000  # the sweep really walked the tz database
    for change in changes:
        where = str(change)
        assert change.at.second == 0, where
        assert change.before % MINUTE == change.after % MINUTE == timedelta(0), where
        assert all(abs(change.at - other) >= timedelta(days=3) for other in change.neighbours), (
            where
        )
        assert wall(change.at - SECOND, change.zone) == change.old_wall - SECOND, where
        assert wall(change.at, change.zone) == change.new_wall, where


@pytest.mark.slow
def test_every_gap_1995_2037_moves_skipped_times_on_and_skips_a_window_inside_it() -> None:
    """At every clock-forward change 1995-2037 a skipped time moves on by the gap, and a window lying in the gap opens the next day.

    Catches: a skipped local time resolved backwards (``fold=1``), and a window opening taken
    without checking that it falls inside the window.
    """
    gaps = [c for c in every_change() if c.after > c.before]
    assert len(gaps) > 5_000
    for change in gaps:
        zone, where = change.zone, str(change)
        skipped_from, skipped_to = change.old_wall, change.new_wall  # [from, to) never read
        first = ceil_minute(skipped_from)
        last = ceil_minute(skipped_to) - MINUTE
        assert first <= last, where  # every gap in range skips whole minutes
        for naive in (first, last):
            moved = change.at + (naive - skipped_from)
            assert resolve_local(naive.date(), naive.time(), zone) == moved, where
        # Either side of the gap the wall time reads once, with its own offset.
        assert resolve_local((first - MINUTE).date(), (first - MINUTE).time(), zone) == (
            as_utc(first - MINUTE) - change.before
        ), where
        assert resolve_local((last + MINUTE).date(), (last + MINUTE).time(), zone) == (
            as_utc(last + MINUTE) - change.after
        ), where

        day = first.date()
        assert first.time() < time(23, 59), where  # room for a window after it that day
        end = min(last + MINUTE, datetime.combine(day, time(23, 59)))
        inside = SendWindow(first.time(), end.time())  # every minute of it is skipped on `day`
        instant = change.at - MINUTE
        assert not inside.contains(wall(instant, zone).time()), where
        next_day = datetime.combine(day + timedelta(days=1), first.time())
        assert next_window_open(instant, zone, inside) == as_utc(next_day) - change.after, where

        moved = change.at + (first - skipped_from)
        if wall(moved, zone).date() == day and wall(moved, zone).time() < time(23, 59):
            # A window opening in the gap and closing later opens when the gap ends.
            wide = SendWindow(first.time(), time(23, 59))
            assert next_window_open(instant, zone, wide) == moved, where


@pytest.mark.slow
def test_every_overlap_1995_2037_reads_first_and_reopens_a_window_at_the_second() -> None:
    """At every clock-back change 1995-2037 a repeated time resolves to its first reading, and a window starting then reopens at the second.

    Catches: a repeated local time resolved to its later reading, and a window opening that
    ignores the second reading of its start.
    """
    overlaps = [c for c in every_change() if c.after < c.before]
    assert len(overlaps) > 5_000
    for change in overlaps:
        zone, where = change.zone, str(change)
        repeated_from, repeated_to = change.new_wall, change.old_wall  # [from, to) read twice
        first = ceil_minute(repeated_from)
        last = ceil_minute(repeated_to) - MINUTE
        assert first <= last, where
        for naive in (first, last):
            assert (
                resolve_local(naive.date(), naive.time(), zone) == as_utc(naive) - change.before
            ), where
        assert resolve_local((first - MINUTE).date(), (first - MINUTE).time(), zone) == (
            as_utc(first - MINUTE) - change.before
        ), where
        assert resolve_local((last + MINUTE).date(), (last + MINUTE).time(), zone) == (
            as_utc(last + MINUTE) - change.after
        ), where

        assert first.time() < time(23, 59), where
        window = SendWindow(first.time(), (first + MINUTE).time())
        first_reading, second_reading = as_utc(first) - change.before, as_utc(first) - change.after
        instant = first_reading + MINUTE  # the window has closed; its start comes round again
        assert instant < second_reading, where
        assert not window.contains(wall(instant, zone).time()), where
        assert next_window_open(instant, zone, window) == second_reading, where


# --- plan ----------------------------------------------------------------------------------

CHANNEL_ORDERS: tuple[tuple[Channel, ...], ...] = (
    ("sms",),
    ("email",),
    ("sms", "email"),
    ("email", "sms"),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Patient, Protocol, SendWindow, dict[str, list[int]]]:
    """A patient, a protocol and a window, plus the day offsets each milestone must produce.

    Each milestone has its own condition key, so whether it applies is decided here by
    construction (attribute accepted, rejected or missing), not recomputed from the code.
    """
    window = draw(windows())
    start = window.start.hour * 60 + window.start.minute
    end = window.end.hour * 60 + window.end.minute
    patient_channels = draw(st.sampled_from(CHANNEL_ORDERS))
    attributes: dict[str, str] = {}
    milestones = []
    expected: dict[str, list[int]] = {}
    for index in range(draw(st.integers(1, 5))):
        key = f"k{index}"
        milestone_id = f"m{index}"
        condition = draw(st.sampled_from(["none", "met", "unmet", "missing"]))
        when: dict[str, tuple[str, ...]] = {}
        if condition != "none":
            when[key] = ("left", "both")
        if condition == "met":
            attributes[key] = draw(st.sampled_from(["left", "both"]))
        elif condition == "unmet":
            attributes[key] = "right"
        offset = draw(st.integers(0, 120))
        repeat = None
        offsets = [offset]
        if draw(st.booleans()):
            every = draw(st.integers(1, 14))
            count = draw(st.integers(1, 6))
            slack = draw(st.integers(0, every - 1))
            repeat = Repeat(every_days=every, until_days=offset + every * (count - 1) + slack)
            offsets = [offset + every * k for k in range(count)]
        channels = draw(st.sampled_from(CHANNEL_ORDERS))
        milestones.append(
            Milestone(
                id=milestone_id,
                offset_days=offset,
                send_time=at_minute(draw(st.integers(start, end - 1))),
                channels=channels,
                template=f"template-{index}",
                expires_after=draw(st.timedeltas(timedelta(minutes=1), timedelta(days=14))),
                repeat=repeat,
                when=when,
            )
        )
        if condition in ("none", "met"):
            expected[milestone_id] = offsets
    patient = Patient(
        id="MRN-1",
        first_name="Ana",
        last_name="Ruiz",
        phone="+15555550100",
        email="ana@example.org",
        surgery_date=draw(st.dates(date(1995, 1, 1), date(2037, 12, 31))),
        protocol="acl",
        timezone=draw(ZONES).key,
        language="es",
        channels=patient_channels,
        status="active",
        attributes=attributes,
    )
    protocol = Protocol(id="acl", title="ACL repair", version=1, milestones=tuple(milestones))
    return patient, protocol, window, expected


@settings(CI, max_examples=100)
@given(scenario=scenarios())
def test_plan_covers_every_applicable_occurrence_on_every_shared_channel(
    scenario: tuple[Patient, Protocol, SendWindow, dict[str, list[int]]],
) -> None:
    """Applicable milestones yield occurrences 1..n at offset, offset+every, ... per channel."""
    patient, protocol, window, expected = scenario
    zone = ZoneInfo(patient.timezone)

    reminders = plan(patient, protocol, window)

    by_key: dict[tuple[str, str], list[PlannedReminder]] = defaultdict(list)
    for reminder in reminders:
        by_key[reminder.milestone, reminder.channel].append(reminder)
    wanted = set()
    for milestone in protocol.milestones:
        shared = set(milestone.channels) & set(patient.channels)
        if milestone.id in expected:
            wanted |= {(milestone.id, channel) for channel in shared}
        emitted = [c for m, c in by_key if m == milestone.id]
        assert emitted == sorted(emitted, key=milestone.channels.index)
    assert set(by_key) == wanted

    for (milestone_id, _), group in by_key.items():
        milestone = protocol.milestone(milestone_id)
        assert milestone is not None
        offsets = expected[milestone_id]
        assert [r.occurrence for r in group] == list(range(1, len(offsets) + 1))
        for reminder, offset in zip(group, offsets, strict=True):
            assert reminder.patient_id == patient.id
            assert reminder.protocol == protocol.id
            assert reminder.template == milestone.template
            assert reminder.due_at.tzinfo is UTC
            assert reminder.due_at == due_at(
                patient.surgery_date, offset, milestone.send_time, zone, window
            )
            assert window.contains(wall(reminder.due_at, zone).time())
            assert reminder.expires_at == reminder.due_at + milestone.expires_after
        dues = [r.due_at for r in group]
        assert dues == sorted(dues)


def test_plan_skips_a_milestone_with_no_shared_channel() -> None:
    """An email-only milestone produces nothing for an SMS-only patient."""
    milestone = Milestone(
        id="day-1",
        offset_days=1,
        send_time=time(10),
        channels=("email",),
        template="day-1",
        expires_after=timedelta(days=1),
    )
    patient = _patient(channels=("sms",))
    protocol = Protocol(id="acl", title="ACL", version=1, milestones=(milestone,))
    assert plan(patient, protocol, SendWindow(time(8), time(20))) == []


# --- initial_status and late enrollment ----------------------------------------------------


def _patient(channels: tuple[Channel, ...] = ("sms",), surgery: date = date(2026, 3, 1)) -> Patient:
    return Patient(
        id="MRN-7",
        first_name="Sam",
        last_name="Lee",
        phone="+15555550123",
        email=None,
        surgery_date=surgery,
        protocol="hamstring",
        timezone="America/New_York",
        language="en",
        channels=channels,
        status="active",
    )


def test_late_enrollment_expires_past_milestones_and_keeps_current_ones() -> None:
    """Enrolled after the fact, past milestones are expired and still-sendable ones are planned."""
    protocol = Protocol(
        id="hamstring",
        title="Proximal hamstring repair",
        version=1,
        milestones=(
            Milestone("day-1-crutches", 1, time(10), ("sms",), "crutches", timedelta(days=1)),
            Milestone("week-1-check", 7, time(10), ("sms",), "check", timedelta(days=2)),
            Milestone(
                "exercises",
                5,
                time(18),
                ("sms",),
                "exercises",
                timedelta(hours=12),
                repeat=Repeat(every_days=2, until_days=11),
            ),
        ),
    )
    # Monday 2026-03-09 11:00 EDT, the day after New York's clocks sprang forward.
    now = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)

    reminders = plan(_patient(), protocol, SendWindow(time(8), time(20)))
    seen = {(r.milestone, r.occurrence): (r.due_at, initial_status(r, now)) for r in reminders}

    assert seen == {
        # 2026-03-02 10:00 EST; expired 2026-03-03 15:00Z
        ("day-1-crutches", 1): (datetime(2026, 3, 2, 15, tzinfo=UTC), "expired"),
        # 2026-03-08 10:00 EDT (after the gap); still sendable until 2026-03-10 14:00Z
        ("week-1-check", 1): (datetime(2026, 3, 8, 14, tzinfo=UTC), "planned"),
        # days 5, 7, 9, 11 at 18:00 local, 12 hours each
        ("exercises", 1): (datetime(2026, 3, 6, 23, tzinfo=UTC), "expired"),
        ("exercises", 2): (datetime(2026, 3, 8, 22, tzinfo=UTC), "expired"),
        ("exercises", 3): (datetime(2026, 3, 10, 22, tzinfo=UTC), "planned"),
        ("exercises", 4): (datetime(2026, 3, 12, 22, tzinfo=UTC), "planned"),
    }


def test_initial_status_is_expired_at_the_expiry_instant_itself() -> None:
    """``expires_at`` is the first instant the reminder may no longer go out."""
    due = datetime(2026, 3, 2, 15, tzinfo=UTC)
    reminder = PlannedReminder(
        "MRN-7", "hamstring", "day-1", 1, "sms", "day-1", due, due + timedelta(days=1)
    )
    tick = timedelta(microseconds=1)
    assert initial_status(reminder, reminder.expires_at - tick) == "planned"
    assert initial_status(reminder, reminder.expires_at) == "expired"
    assert initial_status(reminder, reminder.expires_at + tick) == "expired"


@CI
@given(
    zone=ZONES,
    surgery=st.dates(date(1995, 1, 1), date(2037, 12, 31)),
    offset=st.integers(0, 60),
    expiry=st.timedeltas(timedelta(minutes=1), timedelta(days=14)),
    delta=st.timedeltas(timedelta(days=-30), timedelta(days=30)),
)
def test_initial_status_is_expired_exactly_when_now_has_reached_expiry(
    zone: ZoneInfo, surgery: date, offset: int, expiry: timedelta, delta: timedelta
) -> None:
    """A reminder enrolled at ``expires_at + delta`` is expired iff ``delta >= 0``."""
    milestone = Milestone("m", offset, time(10), ("sms",), "m", expiry)
    patient = Patient(
        "p", "A", "B", "+15555550100", None, surgery, "x", zone.key, "en", ("sms",), "active"
    )
    protocol = Protocol("x", "X", 1, (milestone,))
    (reminder,) = plan(patient, protocol, SendWindow(time(8), time(20)))
    assert reminder.expires_at - reminder.due_at == expiry
    expected = "expired" if delta >= timedelta(0) else "planned"
    assert initial_status(reminder, reminder.expires_at + delta) == expected
