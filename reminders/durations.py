"""Reading the human durations and times of ``schedules.yaml`` ("week 6", "2 days", "10:00")."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Final

_UNITS: Final[dict[str, timedelta]] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
_AMOUNT_UNIT = re.compile(r"^\s*(\d+)\s*(minute|hour|day|week)s?\s*$", re.IGNORECASE)
_UNIT_AMOUNT = re.compile(r"^\s*(day|week)\s+(\d+)\s*$", re.IGNORECASE)
#: No protocol step is planned further than this from its anchor (keeps date math in range).
MAX_OFFSET_DAYS: Final = 3650
_CLOCK = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?\s*$")


def parse_duration(text: object) -> timedelta:
    """Read ``"2 days"``, ``"12 hours"``, ``"1 week"`` as a timedelta.

    Raises ValueError with a message a coordinator can act on.
    """
    match = _AMOUNT_UNIT.match(str(text))
    if not match:
        raise ValueError(f"expected a duration like '2 days' or '12 hours', got {text!r}")
    try:
        return int(match.group(1)) * _UNITS[match.group(2).lower()]
    except OverflowError:
        # Callers report ValueError as a config error; an overflow would escape as a crash.
        raise ValueError(f"duration is too long, got {text!r}") from None


def parse_day_offset(text: object) -> int:
    """Read a day offset from the anchor: ``"day 1"``, ``"week 6"``, ``"3 days"``, ``"6 weeks"``."""
    raw = str(text)
    match = _UNIT_AMOUNT.match(raw)
    if match:
        unit, amount = match.group(1).lower(), int(match.group(2))
    else:
        match = _AMOUNT_UNIT.match(raw)
        if not match or match.group(2).lower() not in ("day", "week"):
            raise ValueError(f"expected 'day N' or 'week N' (or 'N days', 'N weeks'), got {text!r}")
        amount, unit = int(match.group(1)), match.group(2).lower()
    days = amount * 7 if unit == "week" else amount
    if days > MAX_OFFSET_DAYS:
        raise ValueError(
            f"{text!r} is more than {MAX_OFFSET_DAYS // 365} years after the anchor date"
        )
    return days


def parse_clock(text: object) -> time:
    """Read a local wall-clock time ``"HH:MM"`` (or ``"HH:MM:SS"``)."""
    match = _CLOCK.match(str(text))
    if not match:
        raise ValueError(f"expected a local time like '10:00', got {text!r}")
    return time(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))


def format_duration(delta: timedelta) -> str:
    """Render a timedelta in the largest whole unit (``"2 days"``)."""
    seconds = int(delta.total_seconds())
    for name, unit in reversed(_UNITS.items()):
        size = int(unit.total_seconds())
        if seconds % size == 0:
            amount = seconds // size
            return f"{amount} {name}{'' if amount == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"
