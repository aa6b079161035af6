"""Walking a parsed YAML document: every refusal names the file, the record and the field.

:class:`Reader` is what ``schedules.yaml``'s validation (:mod:`reminders.config`) reads
with; :func:`load_zone` checks an IANA time zone name against the zones installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from reminders.errors import ScheduleError
from reminders.fields import LIMITS, MAX_TEXT, shorten, text_problem, too_long
from reminders.models import CHANNELS, Channel


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; raises ValueError for an unknown or malformed name."""
    if name not in _zone_names():
        raise ValueError(f"unknown IANA time zone {name!r} (e.g. 'America/New_York')")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - guarded above
        raise ValueError(f"unknown IANA time zone {name!r}") from exc


_ZONES: set[str] = set()


def _zone_names() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
    return _ZONES


class Reader:
    """Walks the raw YAML, raising ScheduleError that names record and field."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, record: str, field: str, message: str) -> ScheduleError:
        return ScheduleError(self.file, message, record=record, field=field)

    def mapping(self, value: object, record: str, field: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(record, field, f"expected a mapping, got {type(value).__name__}")
        return cast(Mapping[str, Any], value)

    def text(
        self,
        block: Mapping[str, Any],
        key: str,
        record: str,
        *,
        default: str | None = None,
        limit: int | None = None,
    ) -> str:
        value = block.get(key, default)
        if value is None:
            raise self.fail(record, key, "is required")
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            raise self.fail(record, key, f"expected text, got {shorten(repr(value))}")
        return self.bounded(str(value).strip(), record, key, limit or LIMITS.get(key, MAX_TEXT))

    def bounded(self, text: str, record: str, field: str, limit: int) -> str:
        reason = too_long(text, limit) if limit == MAX_TEXT else text_problem(text, limit)
        if reason is not None:
            raise self.fail(record, field, reason)
        return text

    def scalars(self, value: object, record: str = "", field: str = "") -> None:
        """Refuse any text in the document longer than MAX_TEXT, before reading any field."""
        if isinstance(value, str):
            self.bounded(value, record, field, MAX_TEXT)
            return
        inner = ".".join(part for part in (record, field) if part)
        if isinstance(value, Mapping):
            for key, item in value.items():
                name = shorten(str(key))
                self.bounded(str(key), inner, name, MAX_TEXT)
                self.scalars(item, inner, name)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.scalars(item, record, f"{field}[{index}]")

    def only(self, block: Mapping[str, Any], allowed: set[str], record: str) -> None:
        unknown = sorted(str(key) for key in set(block) - allowed)
        if unknown:
            raise self.fail(
                record, unknown[0], f"unknown key (allowed: {', '.join(sorted(allowed))})"
            )

    def convert(self, parse: Any, value: object, record: str, field: str) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise self.fail(record, field, str(exc)) from None

    def channels(self, value: object, record: str, field: str) -> tuple[Channel, ...]:
        items = value if isinstance(value, list) else [value]
        result: list[Channel] = []
        for item in items:
            if item not in CHANNELS:
                raise self.fail(
                    record, field, f"unknown channel {item!r} (known: {', '.join(CHANNELS)})"
                )
            if item not in result:
                result.append(cast(Channel, item))
        if not result:
            raise self.fail(record, field, "needs at least one channel")
        return tuple(result)
