"""Reading the patients file (YAML or CSV) into validated :class:`~reminders.models.Patient` values.

A bad record never stops the others: it becomes a :class:`Problem` naming the file,
the record and the field, and the sync leaves that patient's stored enrollment alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

from reminders.csvio import read_rows
from reminders.errors import PatientFileError
from reminders.fields import (
    LIMITS,
    MAX_ATTRIBUTE_KEY,
    MAX_ATTRIBUTE_VALUE,
    MAX_ATTRIBUTES,
    attribute_text,
    check_length,
    normalise_email,
    normalise_phone,
    shorten,
    text_problem,
)
from reminders.lifecycle import FILE_STATUSES, EnrollmentStatus
from reminders.models import CHANNELS, Channel, Patient, Schedules
from reminders.reader import load_zone
from reminders.records import RawRecord
from reminders.yamlio import read_config_file

#: Default file name, looked up beside ``schedules.yaml``.
PATIENTS_FILE: Final = "patients.yaml"
#: Largest patients file read, in bytes (checked before parsing): about 200,000 patients
#: in YAML, 600,000 in CSV.
MAX_PATIENTS_BYTES: Final = 64 << 20
#: Every column a record may carry.
FIELDS: Final[tuple[str, ...]] = (
    "id",
    "first_name",
    "last_name",
    "phone",
    "email",
    "surgery_date",
    "protocol",
    "timezone",
    "language",
    "channels",
    "status",
    "attributes",
)
#: Earliest and latest surgery date accepted: a protocol's milestones (up to ten years
#: after it) and their local times must stay inside the calendar the planner computes in.
SURGERY_DATES: Final = (date(1900, 1, 1), date(2199, 12, 31))
#: Columns a CSV header must name (``protocol`` may come from schedules.yaml's default).
REQUIRED: Final = ("id", "first_name", "surgery_date")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one record of the patients file."""

    #: The file.
    file: str
    #: The record, e.g. ``patients[3] id=P-1004`` or ``row 5 id=P-1004``.
    record: str
    #: The field at fault (empty when the record as a whole is wrong).
    field: str
    #: What is wrong.
    message: str
    #: The record's id when it has one: that patient's stored enrollment is left untouched.
    patient_id: str | None = None

    def __str__(self) -> str:
        return ": ".join(p for p in (self.file, self.record, self.field, self.message) if p)


Outcome = tuple[Patient | None, list[Problem]]
"""A record validated: its Patient, or None, and every problem found in it."""


@dataclass(frozen=True, slots=True)
class PatientFile:
    """The outcome of reading a patients file."""

    #: The file read.
    path: Path
    #: Valid records, in file order.
    patients: list[Patient] = field(default_factory=list)
    #: Everything wrong, in file order.
    problems: list[Problem] = field(default_factory=list)

    @property
    def rejected_ids(self) -> set[str]:
        """Ids of records that failed: their stored enrollments stay as they are."""
        return {p.patient_id for p in self.problems if p.patient_id}

    @property
    def rejected(self) -> int:
        """How many records failed (one record may have several problems)."""
        return records_with_problems(self.problems)


def records_with_problems(problems: Iterable[Problem]) -> int:
    """How many records ``problems`` are about: ``N patients, M problems`` counts both."""
    return len({(p.file, p.record) for p in problems})


def patients_path(config_dir: Path, override: str | os.PathLike[str] | None = None) -> Path:
    """The patients file: ``override``, else ``REMINDERS_PATIENTS``, else beside schedules.yaml."""
    chosen = override or os.environ.get("REMINDERS_PATIENTS")
    if chosen:
        return Path(chosen)
    yaml_path = config_dir / PATIENTS_FILE
    csv_path = config_dir / "patients.csv"
    return csv_path if not yaml_path.exists() and csv_path.exists() else yaml_path


def read_records(path: Path, schedules: Schedules) -> list[RawRecord]:
    """Read the raw records of a YAML, CSV or FHIR patients file; raises PatientFileError."""
    return list(iter_records(path, schedules))


def iter_records(path: Path, schedules: Schedules) -> Iterator[RawRecord]:
    """The raw records one by one (a CSV file is streamed); raises PatientFileError.

    A CSV file that turns out unreadable half-way raises when that row is reached,
    so callers must not act on the records before the iteration has finished. A
    ``.json`` file is a FHIR Bundle, read through ``schedules``' ``fhir:`` table.
    """
    file = str(path)
    hint = "use --patients PATH or REMINDERS_PATIENTS"
    if path.suffix.lower() == ".json":
        # fhir.resources costs 0.3 s and 4 MiB to import: only for a FHIR patients file.
        from reminders.fhir.reading import read_bundle  # noqa: PLC0415

        yield from read_bundle(path, schedules, MAX_PATIENTS_BYTES)
        return
    if path.suffix.lower() == ".csv":
        try:
            yield from _read_csv(path)
        except FileNotFoundError:
            raise PatientFileError(file, f"file not found ({hint})") from None
        except OSError as exc:
            raise PatientFileError(file, f"cannot read: {exc.strerror}") from None
        return
    doc = read_config_file(path, PatientFileError, hint, MAX_PATIENTS_BYTES)
    if doc is None:
        doc = {"patients": []}
    if not isinstance(doc, Mapping) or set(doc) != {"patients"}:
        raise PatientFileError(file, "expected a top-level 'patients:' list and nothing else")
    items = doc["patients"] or []
    if not isinstance(items, list):
        raise PatientFileError(file, "'patients' must be a list of records", field="patients")
    for i, item in enumerate(items):
        yield RawRecord(f"patients[{i}]", item if isinstance(item, Mapping) else {"": item})


def _read_csv(path: Path) -> Iterator[RawRecord]:
    rows = read_rows(path, FIELDS, REQUIRED, PatientFileError, MAX_PATIENTS_BYTES)
    for number, cells in rows:
        yield RawRecord(f"row {number}", cells)


def validate_record(
    file: str, record: RawRecord, schedules: Schedules
) -> tuple[Patient | None, list[Problem]]:
    """Validate one record: a Patient, or None and every problem found in it."""
    raw = record.fields
    pid = record.patient_id
    problems: list[Problem] = []

    covered = {fault.field for fault in record.faults}

    def problem(field_name: str, message: str) -> None:
        if field_name.partition(".")[0] in covered:
            return  # the reader said what is wrong with it
        place, element = record.where(field_name)
        problems.append(Problem(file, place, element, message, pid))

    for fault in record.faults:
        if fault.place:
            place, element = record.labelled(fault.place), fault.element
        else:
            place, element = record.where(fault.field)
            element = fault.element or element
        problems.append(Problem(file, place, element, fault.message, pid))
    if "" in covered:
        return None, problems
    if "" in raw and len(raw) == 1:
        problem("", "expected a record with fields like 'id: P-1001'")
        return None, problems
    for key in raw:
        if key not in FIELDS:
            problem(shorten(str(key)), f"unknown field (known: {', '.join(FIELDS)})")

    def text(name: str, *, required: bool = False) -> str | None:
        value = raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                problem(name, "is required")
            return None
        if isinstance(value, Mapping | list):
            problem(name, f"expected text, got {type(value).__name__}")
            return None
        try:
            return check_length(str(value).strip(), LIMITS[name])
        except ValueError as exc:
            problem(name, str(exc))
            return None

    text("id", required=True)
    first_name = text("first_name", required=True)
    last_name = text("last_name") or ""

    phone = text("phone")
    if phone is not None:
        try:
            phone = normalise_phone(phone, schedules.clinic.country)
        except ValueError as exc:
            problem("phone", str(exc))
    email = text("email")
    if email is not None:
        try:
            email = normalise_email(email)
        except ValueError as exc:
            problem("email", str(exc))

    surgery_date = _date(raw.get("surgery_date"), problem)

    protocol = text("protocol") or schedules.default_protocol
    if protocol is None:
        problem("protocol", "is required (schedules.yaml names no default protocol)")
    elif protocol not in schedules.protocols:
        problem(
            "protocol", f"unknown protocol {protocol!r} (known: {', '.join(schedules.protocols)})"
        )

    timezone = text("timezone") or schedules.clinic.timezone
    try:
        load_zone(timezone)
    except ValueError as exc:
        problem("timezone", str(exc))

    language = text("language") or schedules.languages[0]
    if language not in schedules.languages:
        problem(
            "language",
            f"unsupported language {language!r} (supported: {', '.join(schedules.languages)})",
        )

    status = text("status") or EnrollmentStatus.ACTIVE
    if status not in FILE_STATUSES:
        problem("status", f"expected one of {', '.join(FILE_STATUSES)}, got {status!r}")

    channels = _channels(raw.get("channels"), problem)
    if channels is None:
        channels = tuple(c for c in CHANNELS if (phone if c == "sms" else email))
        if not channels and status != EnrollmentStatus.WITHDRAWN:
            problem("channels", "no phone or email: the patient cannot be reached")
    else:
        if (
            not channels
            and status != EnrollmentStatus.WITHDRAWN
            and all(p.field != "channels" for p in problems)
        ):
            problem("channels", "needs at least one channel: the patient cannot be reached")
        if "sms" in channels and phone is None:
            problem("channels", "sms is listed but there is no phone")
        if "email" in channels and email is None:
            problem("channels", "email is listed but there is no email")

    attributes = _attributes(raw.get("attributes"), problem)

    if problems:
        return None, problems
    # Every None below was reported as a problem above.
    assert pid is not None  # noqa: S101
    assert first_name is not None  # noqa: S101
    assert surgery_date is not None  # noqa: S101
    assert protocol is not None  # noqa: S101
    return (
        Patient(
            id=pid,
            first_name=first_name,
            last_name=last_name,
            phone=phone,
            email=email,
            surgery_date=surgery_date,
            protocol=protocol,
            timezone=timezone,
            language=language,
            channels=channels,
            status=status,
            attributes=attributes,
        ),
        [],
    )


def _date(value: object, problem: Any) -> date | None:
    if value is None or value == "":
        problem("surgery_date", "is required (YYYY-MM-DD)")
        return None
    if isinstance(value, date):
        parsed = value
    else:
        written = str(value).strip()
        reason = text_problem(written, LIMITS["surgery_date"])
        if reason is not None:
            problem("surgery_date", reason)
            return None
        try:
            parsed = date.fromisoformat(written)
        except ValueError:
            problem("surgery_date", f"expected a date YYYY-MM-DD, got {written!r}")
            return None
    if not SURGERY_DATES[0] <= parsed <= SURGERY_DATES[1]:
        first, last = SURGERY_DATES
        problem("surgery_date", f"{parsed} is not between {first} and {last}")
        return None
    return parsed


def _channels(value: object, problem: Any) -> tuple[Channel, ...] | None:
    if value is None or value == "":
        return None
    limit = LIMITS["channels"]
    if isinstance(value, str):
        reason = text_problem(value, limit)
        if reason is not None:
            problem("channels", reason)
            return ()
        items: list[object] = [v for v in value.replace(";", ",").replace(" ", ",").split(",") if v]
    elif isinstance(value, list):
        items = list(value)
        if len(items) > len(CHANNELS) * 2:
            problem("channels", f"lists {len(items):,} channels (known: {', '.join(CHANNELS)})")
            return ()
    else:
        problem("channels", f"expected a list like [sms, email], got {shorten(repr(value))}")
        return ()
    result: list[Channel] = []
    for item in items:
        if item not in CHANNELS:
            problem(
                "channels",
                f"unknown channel {shorten(repr(item))} (known: {', '.join(CHANNELS)})",
            )
        elif item not in result:
            result.append(item)  # narrowed to Channel by the membership test above
    return tuple(result)


def _attributes(value: object, problem: Any) -> dict[str, str]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        # CSV form: "repair=chronic; goal=sport"
        pairs: dict[str, object] = {}
        for part in value.split(";"):
            if not part.strip():
                continue
            key, sep, val = part.partition("=")
            if not sep or not key.strip():
                problem("attributes", f"expected 'key=value; key=value', got {shorten(value)!r}")
                return {}
            pairs[key.strip()] = val.strip()
        value = pairs
    if not isinstance(value, Mapping):
        problem(
            "attributes",
            f"expected a mapping like {{repair: acute}}, got {shorten(repr(value))}",
        )
        return {}
    if len(value) > MAX_ATTRIBUTES:
        problem("attributes", f"has {len(value):,} attributes; the limit is {MAX_ATTRIBUTES}")
        return {}
    result: dict[str, str] = {}
    for key, val in value.items():
        name = str(key)
        field_name = f"attributes.{shorten(name)}"
        if isinstance(val, Mapping | list) or val is None:
            problem(field_name, "expected a single value")
            continue
        text = attribute_text(val)
        reason = text_problem(name, MAX_ATTRIBUTE_KEY)
        if reason is not None:
            problem(field_name, f"the name {reason}")
        elif (reason := text_problem(text, MAX_ATTRIBUTE_VALUE)) is not None:
            problem(field_name, reason)
        else:
            result[name] = text
    return result
