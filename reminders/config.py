"""Reading and validating ``schedules.yaml`` into a :class:`~reminders.models.Schedules`.

Validation stops at the first error: a broken ``schedules.yaml`` changes nothing,
so one precise message is more useful than a cascade.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import phonenumbers

from reminders.durations import parse_clock, parse_day_offset, parse_duration
from reminders.errors import ScheduleError
from reminders.fields import (
    LIMITS,
    MAX_ATTRIBUTE_KEY,
    MAX_ATTRIBUTE_VALUE,
    attribute_text,
    normalise_email,
    shorten,
)
from reminders.lifecycle import AlertLevel
from reminders.models import (
    CHANNELS,
    TIMEZONE_EXTENSION,
    Channel,
    Clinic,
    Colours,
    FhirMapping,
    Milestone,
    Protocol,
    Repeat,
    Schedules,
    SendWindow,
)
from reminders.questions import parse_question
from reminders.reader import Reader as _Reader
from reminders.reader import load_zone
from reminders.yamlio import read_config_file

SCHEDULES_FILE: Final = "schedules.yaml"
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_LANGUAGE = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")
#: Most protocols in one file, milestones in one protocol, and reminders one protocol
#: plans per patient and channel (every repeat counted): a typo like ``every: 1 day``
#: ``until: week 520`` would otherwise plan millions of rows for a clinic.
MAX_PROTOCOLS: Final = 50
MAX_MILESTONES: Final = 100
MAX_OCCURRENCES: Final = 500
#: Most procedure codes in the ``fhir:`` table.
MAX_PROCEDURE_CODES: Final = 500


def load_schedules(config_dir: Path) -> Schedules:
    """Read ``config_dir/schedules.yaml``; raises ScheduleError naming record and field."""
    path = config_dir / SCHEDULES_FILE
    raw = read_config_file(path, ScheduleError, "use --config DIR or REMINDERS_CONFIG_DIR")
    return parse_schedules(raw, str(path))


def parse_schedules(raw: object, file: str) -> Schedules:
    """Validate the parsed YAML document of a schedules file."""
    r = _Reader(file)
    doc = r.mapping(raw, "", "")
    r.scalars(doc)
    r.only(doc, {"clinic", "defaults", "protocols", "fhir"}, "")
    clinic = _clinic(r, r.mapping(doc.get("clinic"), "clinic", ""))

    defaults = r.mapping(doc.get("defaults", {}), "defaults", "")
    r.only(
        defaults,
        {
            "protocol",
            "send_time",
            "send_window",
            "expires_after",
            "languages",
            "channels",
            "ack_within",
        },
        "defaults",
    )
    send_time = r.convert(parse_clock, defaults.get("send_time", "10:00"), "defaults", "send_time")
    window = r.convert(
        _window, defaults.get("send_window", "08:00-20:00"), "defaults", "send_window"
    )
    if not window.contains(send_time):
        raise r.fail("defaults", "send_time", f"{send_time:%H:%M} is outside send_window {window}")
    expiry = r.convert(
        parse_duration, defaults.get("expires_after", "1 day"), "defaults", "expires_after"
    )
    languages_raw = defaults.get("languages", ["en"])
    if not isinstance(languages_raw, list) or not languages_raw:
        raise r.fail("defaults", "languages", "expected a list of language codes, e.g. [en, es]")
    for language in languages_raw:
        if not isinstance(language, str) or not _LANGUAGE.match(language):
            raise r.fail("defaults", "languages", f"{language!r} is not a language code like 'en'")
    channels = r.channels(defaults.get("channels", list(CHANNELS)), "defaults", "channels")
    ack_within = r.convert(
        parse_duration, defaults.get("ack_within", "30 minutes"), "defaults", "ack_within"
    )
    if not timedelta(minutes=1) <= ack_within <= timedelta(days=1):
        raise r.fail("defaults", "ack_within", "must be between 1 minute and 1 day")

    protocols_raw = r.mapping(doc.get("protocols"), "protocols", "")
    if not protocols_raw:
        raise r.fail("protocols", "", "at least one protocol is required")
    if len(protocols_raw) > MAX_PROTOCOLS:
        raise r.fail(
            "protocols", "", f"has {len(protocols_raw)} protocols; the limit is {MAX_PROTOCOLS}"
        )
    context = _MilestoneDefaults(send_time, window, expiry, channels)
    protocols = {
        str(pid): _protocol(r, str(pid), body, context) for pid, body in protocols_raw.items()
    }
    _check_in_contacts(r, clinic, protocols)
    default_protocol = defaults.get("protocol")
    if default_protocol is not None and (
        not isinstance(default_protocol, str) or default_protocol not in protocols
    ):
        raise r.fail("defaults", "protocol", f"no protocol named {default_protocol!r}")
    fhir = _fhir(r, doc["fhir"], protocols) if "fhir" in doc else FhirMapping()

    fingerprint = hashlib.blake2b(
        json.dumps(_canonical(_planned(raw)), sort_keys=True, default=str).encode(),
        digest_size=16,
    ).hexdigest()
    return Schedules(
        clinic=clinic,
        default_protocol=default_protocol,
        send_window=window,
        languages=tuple(languages_raw),
        protocols=protocols,
        fingerprint=fingerprint,
        fhir=fhir,
        ack_within=ack_within,
    )


def _check_in_contacts(r: _Reader, clinic: Clinic, protocols: Mapping[str, Protocol]) -> None:
    """Alerts need someone to tell: the care team for any rule, the on-call list for urgent."""
    for protocol in protocols.values():
        for m in protocol.milestones:
            q = m.question
            if q is None or not q.has_alerts:
                continue
            where = f"protocols.{protocol.id} milestone {m.id}"
            if not clinic.care_team:
                raise r.fail(
                    "clinic", "care_team", f"is required: {where} has alert rules (emails to tell)"
                )
            if any(t.level == AlertLevel.URGENT for t in q.thresholds) and not clinic.on_call:
                raise r.fail(
                    "clinic",
                    "on_call",
                    f"is required: {where} has an urgent rule (numbers to text)",
                )


def _canonical(value: object) -> object:
    """``value`` with every mapping key as text, so ``sort_keys`` never compares int with str."""
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def _fhir(r: _Reader, raw: object, protocols: Mapping[str, Protocol]) -> FhirMapping:
    """The ``fhir:`` block: how a FHIR Bundle's Patient and Procedure become records."""
    block = r.mapping(raw, "fhir", "")
    r.only(
        block,
        {"patient_identifier", "timezone_extension", "attribute_extension", "procedures"},
        "fhir",
    )

    def uri(key: str, default: str | None = None) -> str | None:
        if block.get(key) is None:
            return default
        value = r.text(block, key, "fhir")
        if any(c.isspace() for c in value):
            raise r.fail("fhir", key, f"{shorten(value)!r} is not a URI (no spaces)")
        return value

    items = block.get("procedures") or []
    if not isinstance(items, list):
        raise r.fail("fhir", "procedures", "expected a list of {system, code, protocol}")
    if len(items) > MAX_PROCEDURE_CODES:
        raise r.fail(
            "fhir", "procedures", f"has {len(items)} codes; the limit is {MAX_PROCEDURE_CODES}"
        )
    procedures: dict[tuple[str, str], str] = {}
    for index, item in enumerate(items):
        record = f"fhir.procedures[{index}]"
        entry = r.mapping(item, record, "")
        r.only(entry, {"system", "code", "protocol"}, record)
        system = r.text(entry, "system", record)
        code = r.text(entry, "code", record, limit=LIMITS["id"])
        protocol = r.text(entry, "protocol", record, limit=LIMITS["id"])
        if protocol not in protocols:
            raise r.fail(
                record,
                "protocol",
                f"no protocol named {protocol!r} (known: {', '.join(protocols)})",
            )
        if (system, code) in procedures:
            raise r.fail(record, "code", f"{system}|{code} is listed twice")
        procedures[system, code] = protocol
    timezone = uri("timezone_extension", TIMEZONE_EXTENSION)
    assert timezone is not None  # noqa: S101  # it has a default
    return FhirMapping(
        patient_identifier=uri("patient_identifier"),
        timezone_extension=timezone,
        attribute_extension=uri("attribute_extension"),
        procedures=procedures,
    )


def _window(text: object) -> SendWindow:
    parts = str(text).split("-")
    if len(parts) != 2:
        raise ValueError(f"expected 'HH:MM-HH:MM', got {text!r}")
    window = SendWindow(parse_clock(parts[0]), parse_clock(parts[1]))
    if window.start >= window.end:
        raise ValueError(f"the window must start before it ends on the same day, got {text!r}")
    return window


def _planned(raw: object) -> object:
    """``raw`` without what no message depends on (the dashboard's colours), for the fingerprint."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("clinic"), Mapping):
        return raw
    clinic = {k: v for k, v in raw["clinic"].items() if k != "colours"}
    return {**raw, "clinic": clinic}


#: A CSS colour as the dashboard takes it: ``#rgb`` or ``#rrggbb``, nothing else.
_COLOUR: Final = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")


def _colours(r: _Reader, value: object) -> Colours:
    """``clinic.colours``: the dashboard's header and accent colours (optional)."""
    if value is None:
        return Colours()
    block = r.mapping(value, "clinic", "colours")
    r.only(block, {"primary", "accent"}, "clinic.colours")
    found = {}
    for key in ("primary", "accent"):
        if key in block:
            text = r.text(block, key, "clinic.colours")
            if not _COLOUR.fullmatch(text):
                raise r.fail("clinic.colours", key, f"{text!r} is not a colour like '#1f4e79'")
            found[key] = text.lower()
    return Colours(**found)


def _clinic(r: _Reader, block: Mapping[str, Any]) -> Clinic:
    r.only(
        block,
        {
            "name",
            "short_name",
            "phone",
            "coordinator_email",
            "timezone",
            "country",
            "care_team",
            "on_call",
            "emergency_number",
            "colours",
        },
        "clinic",
    )
    name = r.text(block, "name", "clinic")
    country = r.text(block, "country", "clinic", default="US").upper()
    if country not in phonenumbers.SUPPORTED_REGIONS:
        raise r.fail("clinic", "country", f"unknown ISO 3166 region {country!r}")
    phone_raw = r.text(block, "phone", "clinic")
    try:
        number = phonenumbers.parse(phone_raw, country)
    except phonenumbers.NumberParseException as exc:
        raise r.fail("clinic", "phone", f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise r.fail("clinic", "phone", f"{phone_raw!r} is not a valid phone number")
    timezone = r.text(block, "timezone", "clinic")
    r.convert(load_zone, timezone, "clinic", "timezone")
    coordinator = block.get("coordinator_email")
    if coordinator is not None:
        coordinator = r.convert(normalise_email, coordinator, "clinic", "coordinator_email")
    care_team = tuple(
        r.convert(normalise_email, item, "clinic", f"care_team[{i}]")
        for i, item in enumerate(_list(r, block.get("care_team", []), "care_team"))
    )
    on_call = tuple(
        _phone(r, item, country, f"on_call[{i}]")
        for i, item in enumerate(_list(r, block.get("on_call", []), "on_call"))
    )
    emergency = r.text(block, "emergency_number", "clinic", default="911", limit=LIMITS["phone"])
    if not re.fullmatch(r"\d{2,6}", emergency):
        raise r.fail("clinic", "emergency_number", "expected a short number such as 911 or 112")
    return Clinic(
        name=name,
        short_name=r.text(block, "short_name", "clinic", default=name),
        phone=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phone_display=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL),
        timezone=timezone,
        country=country,
        coordinator_email=coordinator,
        colours=_colours(r, block.get("colours")),
        care_team=care_team,
        on_call=on_call,
        emergency_number=emergency,
    )


#: Most addresses in clinic.care_team or clinic.on_call (every alert goes to each).
MAX_CONTACTS: Final = 20


def _list(r: _Reader, value: object, field: str) -> list[object]:
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_CONTACTS:
        raise r.fail("clinic", field, f"has {len(items)} entries; the limit is {MAX_CONTACTS}")
    return items


def _phone(r: _Reader, value: object, country: str, field: str) -> str:
    try:
        number = phonenumbers.parse(str(value), country)
    except phonenumbers.NumberParseException as exc:
        raise r.fail("clinic", field, f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise r.fail("clinic", field, f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class _MilestoneDefaults:
    def __init__(
        self,
        send_time: Any,
        window: SendWindow,
        expiry: timedelta,
        channels: tuple[Channel, ...],
    ) -> None:
        self.send_time = send_time
        self.window = window
        self.expiry = expiry
        self.channels = channels


def _protocol(r: _Reader, pid: str, raw: object, d: _MilestoneDefaults) -> Protocol:
    record = f"protocols.{shorten(pid)}"
    r.bounded(pid, record, "", LIMITS["id"])
    if not _ID.match(pid):
        raise r.fail(record, "", "protocol ids are lowercase letters, digits and dashes")
    body = r.mapping(raw, record, "")
    r.only(body, {"title", "version", "milestones", "alerts"}, record)
    alerts = r.mapping(body.get("alerts", {}), record, "alerts")
    version = body.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise r.fail(record, "version", f"expected a whole number >= 1, got {version!r}")
    milestones_raw = body.get("milestones")
    if not isinstance(milestones_raw, list) or not milestones_raw:
        raise r.fail(record, "milestones", "expected a non-empty list of milestones")
    if len(milestones_raw) > MAX_MILESTONES:
        raise r.fail(
            record,
            "milestones",
            f"has {len(milestones_raw)} milestones; the limit is {MAX_MILESTONES}",
        )
    milestones: list[Milestone] = []
    for index, item in enumerate(milestones_raw):
        milestone = _milestone(r, f"{record}.milestones[{index}]", item, d, alerts)
        if any(m.id == milestone.id for m in milestones):
            raise r.fail(
                f"{record}.milestones[{index}] id={milestone.id}", "id", "duplicate milestone id"
            )
        milestones.append(milestone)
    occurrences = sum(len(m.offsets()) for m in milestones)
    if occurrences > MAX_OCCURRENCES:
        raise r.fail(
            record,
            "milestones",
            f"plan {occurrences:,} messages per patient and channel (repeats counted); "
            f"the limit is {MAX_OCCURRENCES}: check each repeat's 'every' and 'until'",
        )
    return Protocol(
        id=pid,
        title=r.text(body, "title", record, default=pid),
        version=version,
        milestones=tuple(milestones),
    )


def _milestone(
    r: _Reader, where: str, raw: object, d: _MilestoneDefaults, alerts: Mapping[str, Any]
) -> Milestone:
    body = r.mapping(raw, where, "")
    mid = body.get("id")
    if isinstance(mid, str):
        r.bounded(mid, where, "id", LIMITS["id"])
    if not isinstance(mid, str) or not _ID.match(mid):
        raise r.fail(where, "id", "required: lowercase letters, digits and dashes")
    record = f"{where} id={mid}"
    r.only(
        body,
        {
            "id",
            "at",
            "send_time",
            "template",
            "channels",
            "expires_after",
            "repeat",
            "when",
            "question",
        },
        record,
    )
    if "at" not in body:
        raise r.fail(record, "at", "is required, e.g. 'day 1' or 'week 6'")
    offset = r.convert(parse_day_offset, body["at"], record, "at")
    send_time = r.convert(
        parse_clock, body.get("send_time", d.send_time.strftime("%H:%M:%S")), record, "send_time"
    )
    if not d.window.contains(send_time):
        raise r.fail(
            record, "send_time", f"{send_time:%H:%M} is outside the send window {d.window}"
        )
    template = r.text(body, "template", record, default=mid, limit=LIMITS["id"])
    if not _ID.match(template):
        raise r.fail(record, "template", "template names are lowercase letters, digits and dashes")
    channels = (
        r.channels(body["channels"], record, "channels") if "channels" in body else d.channels
    )
    expiry = d.expiry
    if "expires_after" in body:
        expiry = r.convert(parse_duration, body["expires_after"], record, "expires_after")
    if expiry <= timedelta(0):
        raise r.fail(record, "expires_after", "must be longer than zero")
    repeat = None
    if "repeat" in body:
        rep = r.mapping(body["repeat"], record, "repeat")
        unknown = sorted(str(key) for key in set(rep) - {"every", "until"})
        if unknown:
            raise r.fail(record, f"repeat.{unknown[0]}", "unknown key (allowed: every, until)")
        every = r.convert(parse_day_offset, rep.get("every"), record, "repeat.every")
        until = r.convert(parse_day_offset, rep.get("until"), record, "repeat.until")
        if every < 1:
            raise r.fail(record, "repeat.every", "must be at least 1 day")
        if until < offset:
            raise r.fail(record, "repeat.until", "must not be before 'at'")
        repeat = Repeat(every_days=every, until_days=until)
    when: dict[str, tuple[str, ...]] = {}
    if "when" in body:
        for key, value in r.mapping(body["when"], record, "when").items():
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str | int | bool) for v in values):
                raise r.fail(record, f"when.{key}", "expected a value or a list of values")
            r.bounded(str(key), record, f"when.{key}", MAX_ATTRIBUTE_KEY)
            texts = tuple(attribute_text(v) for v in values)
            for text in texts:
                r.bounded(text, record, f"when.{key}", MAX_ATTRIBUTE_VALUE)
            when[str(key)] = texts
    question = None
    if "question" in body:
        question = parse_question(
            body["question"], file=r.file, record=record, milestone=mid, defaults=alerts
        )
    return Milestone(
        id=mid,
        offset_days=offset,
        send_time=send_time,
        channels=channels,
        template=template,
        expires_after=expiry,
        repeat=repeat,
        when=when,
        question=question,
    )
