"""Helpers for tests of this package and of code built on it (they ship with the package).

Everything here uses fictional data only: 555 phone numbers and example.com addresses.

- :func:`schedules_doc` returns a small valid ``schedules.yaml`` document as a dict,
  :func:`write_schedules` writes one into a config directory and
  :func:`make_schedules` validates one into a :class:`~reminders.models.Schedules`.
- :func:`patient_record` returns one valid patients-file record and
  :func:`write_patients` writes records as a YAML or CSV patients file.
"""

from __future__ import annotations

import copy
import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import yaml

from reminders.channels.base import Channel
from reminders.compose import DEFAULT_DOMAIN, Composer, Links
from reminders.config import SCHEDULES_FILE, parse_schedules
from reminders.dispatch import Dispatcher
from reminders.lifecycle import ReminderStatus, accepted
from reminders.models import Schedules
from reminders.patients import FIELDS
from reminders.store import OutboxManager, Store
from reminders.templates import Templates

#: Protocol id of :func:`schedules_doc`'s main protocol (also its default protocol).
PROTOCOL: Final = "demo-repair"
#: Protocol id of :func:`schedules_doc`'s second protocol.
OTHER_PROTOCOL: Final = "demo-nonoperative"
#: The clinic's fictional phone number in E.164.
CLINIC_PHONE: Final = "+12015550100"

_SCHEDULES: Final[dict[str, Any]] = {
    "clinic": {
        "name": "Example Orthopaedic Clinic",
        "short_name": "EOC",
        "phone": CLINIC_PHONE,
        "coordinator_email": "coordinator@example.com",
        "timezone": "America/New_York",
        "country": "US",
    },
    "defaults": {
        "protocol": PROTOCOL,
        "send_time": "10:00",
        "send_window": "09:00-20:00",
        "expires_after": "2 days",
        "languages": ["en", "es"],
        "channels": ["sms", "email"],
    },
    "protocols": {
        PROTOCOL: {
            "title": "Demo repair",
            "version": 1,
            "milestones": [
                {"id": "day-one", "at": "day 1", "expires_after": "1 day"},
                {
                    "id": "weekly-check",
                    "at": "week 1",
                    "repeat": {"every": "1 week", "until": "week 5"},
                },
                {
                    "id": "brace-off",
                    "at": "week 6",
                    "send_time": "18:30",
                    "channels": ["sms"],
                    "template": "brace-removal",
                },
                {"id": "sport-review", "at": "24 weeks", "when": {"goal": "sport"}},
            ],
        },
        OTHER_PROTOCOL: {
            "title": "Demo without surgery",
            "milestones": [{"id": "start", "at": "day 1"}],
        },
    },
}


def schedules_doc() -> dict[str, Any]:
    """A fresh, valid ``schedules.yaml`` document; tests may change it freely.

    ``protocols.demo-repair.milestones`` holds, in order: ``day-one`` (day 1, only
    defaults), ``weekly-check`` (weeks 1-5, repeating), ``brace-off`` (week 6, own
    send time, SMS only, template ``brace-removal``) and ``sport-review`` (week 24,
    only when ``goal`` is ``sport``).
    """
    return copy.deepcopy(_SCHEDULES)


def milestone(doc: Mapping[str, Any], index: int, protocol: str = PROTOCOL) -> dict[str, Any]:
    """The raw milestone at ``index`` of ``protocol`` in ``doc``, for changing it in place."""
    item: dict[str, Any] = doc["protocols"][protocol]["milestones"][index]
    return item


def schedules_yaml(doc: Mapping[str, Any] | None = None) -> str:
    """``doc`` (default: :func:`schedules_doc`) as YAML text."""
    return yaml.safe_dump(dict(schedules_doc() if doc is None else doc), sort_keys=False)


def write_schedules(config_dir: Path, doc: Mapping[str, Any] | str | None = None) -> Path:
    """Write ``schedules.yaml`` into ``config_dir`` from a document or raw YAML text."""
    path = config_dir / SCHEDULES_FILE
    text = doc if isinstance(doc, str) else schedules_yaml(doc)
    path.write_text(text, encoding="utf-8")
    return path


def make_schedules(doc: Mapping[str, Any] | None = None) -> Schedules:
    """Validate ``doc`` (default: :func:`schedules_doc`) as if read from ``schedules.yaml``."""
    return parse_schedules(schedules_doc() if doc is None else doc, SCHEDULES_FILE)


def patient_record(patient_id: str | None = "P-1001", **fields: Any) -> dict[str, Any]:
    """A valid patients-file record; keyword arguments add or replace fields.

    Pass a field (or ``patient_id``) as ``None`` to leave it out of the record.
    """
    record: dict[str, Any] = {
        "id": patient_id,
        "first_name": "Dana",
        "phone": "+12015550123",
        "surgery_date": "2026-11-20",
    }
    record.update(fields)
    return {key: value for key, value in record.items() if value is not None}


def write_patients(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``records`` as a patients file, CSV when ``path`` ends in ``.csv``, else YAML.

    CSV columns are every field of :data:`reminders.patients.FIELDS` used by some
    record (plus any unknown ones, in order of appearance); lists are written
    ``sms;email`` and mappings ``key=value; key=value``, as a spreadsheet would.
    """
    rows = [dict(record) for record in records]
    if path.suffix.lower() != ".csv":
        path.write_text(yaml.safe_dump({"patients": rows}, sort_keys=False), encoding="utf-8")
        return path
    used = [name for row in rows for name in row]
    columns = [name for name in FIELDS if name in used]
    columns += [name for name in dict.fromkeys(used) if name not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _cell(value: object) -> str:
    """One CSV cell in the form a coordinator's spreadsheet holds it."""
    if isinstance(value, Mapping):
        return "; ".join(f"{key}={item}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ";".join(str(item) for item in value)
    return str(value)


#: Real zones spread around the clock: at any instant one of them is near any local hour.
ZONES: Final[tuple[str, ...]] = (
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "Atlantic/Cape_Verde",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Athens",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Brisbane",
    "Pacific/Noumea",
    "Pacific/Auckland",
)


def zone_at(moment: datetime, hour: float = 13.0) -> ZoneInfo:
    """The zone of :data:`ZONES` whose local time at ``moment`` is closest to ``hour``.

    Tests that run against the real clock use it to put "now" inside a clinic's
    send window, whatever time of day the tests run.
    """

    def distance(name: str) -> float:
        local = moment.astimezone(ZoneInfo(name))
        return abs(local.hour + local.minute / 60 - hour)

    return ZoneInfo(min(ZONES, key=distance))


def make_dispatcher(
    store: Store,
    schedules: Schedules,
    templates: Templates,
    channels: Mapping[str, Channel],
    *,
    unsubscribe: Links | None = None,
    message_domain: str = DEFAULT_DOMAIN,
    **options: Any,
) -> Dispatcher:
    """A dispatcher on ``store`` composing from ``schedules`` and ``templates``.

    ``options`` are :class:`~reminders.dispatch.Dispatcher`'s keyword arguments
    (``owner`` is required there).
    """
    composer = Composer(
        schedules, templates, unsubscribe=unsubscribe, message_domain=message_domain
    )
    return Dispatcher(OutboxManager(store), composer, channels, **options)


def mark_sent(
    store: Store, reminder_ids: Iterable[int], now: datetime, provider_id: str = "SM1"
) -> None:
    """Record reminders as sent, as the dispatcher would: an attempt, then the accepted status."""
    with store.write() as tx:
        for rid in reminder_ids:
            attempt = tx.attempts.begin(rid, 1, "test", now)
            tx.attempts.finish(attempt, accepted(provider_id, ReminderStatus.SENT, 1), now)
            tx.outbox.record_sent(rid, provider_id, now)
