"""Reading and validating ``schedules.yaml`` (reminders.config)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest

from reminders.config import load_schedules, parse_schedules
from reminders.errors import ConfigError, ScheduleError
from reminders.models import Repeat, SendWindow
from reminders.testing import (
    CLINIC_PHONE,
    OTHER_PROTOCOL,
    PROTOCOL,
    make_schedules,
    milestone,
    schedules_doc,
    write_schedules,
)

SHIPPED = Path(__file__).resolve().parents[2] / "schedules.yaml"
BRACE_OFF = f"protocols.{PROTOCOL}.milestones[2] id=brace-off"

Edit = Callable[[dict[str, Any]], None]


def _failure(tmp_path: Path, doc: dict[str, Any] | str) -> tuple[str, ScheduleError]:
    """Write ``doc``, load it, and return the file name and the ScheduleError raised."""
    path = write_schedules(tmp_path, doc)
    with pytest.raises(ScheduleError) as caught:
        load_schedules(tmp_path)
    return str(path), caught.value


# --- a valid document ---------------------------------------------------------------------


def test_valid_document_parses_clinic(tmp_path: Path) -> None:
    """A valid file yields the clinic with its phone in E.164 and in national display form."""
    doc = schedules_doc()
    doc["clinic"]["phone"] = "(201) 555-0100"
    write_schedules(tmp_path, doc)

    schedules = load_schedules(tmp_path)

    clinic = schedules.clinic
    assert clinic.phone == CLINIC_PHONE
    assert clinic.phone_display == "(201) 555-0100"
    assert clinic.name == "Example Orthopaedic Clinic"
    assert clinic.short_name == "EOC"
    assert clinic.timezone == "America/New_York"
    assert clinic.country == "US"
    assert clinic.coordinator_email == "coordinator@example.com"
    assert schedules.default_protocol == PROTOCOL
    assert schedules.send_window == SendWindow(time(9, 0), time(20, 0))
    assert schedules.languages == ("en", "es")
    assert list(schedules.protocols) == [PROTOCOL, OTHER_PROTOCOL]


def test_e164_clinic_phone_gets_display_form() -> None:
    """A clinic phone written in E.164 keeps that form and gains the national display form."""
    clinic = make_schedules().clinic

    assert clinic.phone == CLINIC_PHONE
    assert clinic.phone_display == "(201) 555-0100"


def test_short_name_defaults_to_name() -> None:
    """A clinic without short_name uses its full name for SMS prefixes."""
    doc = schedules_doc()
    del doc["clinic"]["short_name"]

    assert make_schedules(doc).clinic.short_name == "Example Orthopaedic Clinic"


def test_milestone_without_options_takes_the_defaults() -> None:
    """A milestone naming only id and at gets default send time, channels, expiry and template."""
    protocol = make_schedules().protocols[PROTOCOL]

    first = protocol.milestones[0]
    assert first.id == "day-one"
    assert first.offset_days == 1
    assert first.send_time == time(10, 0)
    assert first.channels == ("sms", "email")
    assert first.template == "day-one"
    assert first.expires_after == timedelta(days=1)
    assert first.repeat is None
    assert first.when == {}
    assert protocol.milestones[1].expires_after == timedelta(days=2)


def test_milestone_options_override_the_defaults() -> None:
    """A milestone's own send_time, channels and template replace the defaults."""
    brace_off = make_schedules().protocols[PROTOCOL].milestones[2]

    assert brace_off.offset_days == 42
    assert brace_off.send_time == time(18, 30)
    assert brace_off.channels == ("sms",)
    assert brace_off.template == "brace-removal"


def test_defaults_block_is_optional() -> None:
    """Without a defaults block, built-in defaults apply (10:00, 08:00-20:00, 1 day, en)."""
    doc = schedules_doc()
    del doc["defaults"]

    schedules = make_schedules(doc)

    assert schedules.default_protocol is None
    assert schedules.send_window == SendWindow(time(8, 0), time(20, 0))
    assert schedules.languages == ("en",)
    weekly = schedules.protocols[PROTOCOL].milestones[1]
    assert weekly.send_time == time(10, 0)
    assert weekly.expires_after == timedelta(days=1)
    assert weekly.channels == ("sms", "email")


def test_repeat_is_parsed_into_days() -> None:
    """``repeat: {every: 1 week, until: week 5}`` from week 1 gives five weekly occurrences."""
    weekly = make_schedules().protocols[PROTOCOL].milestones[1]

    assert weekly.repeat == Repeat(every_days=7, until_days=35)
    assert weekly.offsets() == (7, 14, 21, 28, 35)


def test_when_is_parsed_into_accepted_texts() -> None:
    """``when`` values become tuples of text; a list means any of them, ``true`` reads ``true``."""
    doc = schedules_doc()
    milestone(doc, 0)["when"] = {"repair": ["chronic", "acute"], "athlete": True, "level": 2}

    when = make_schedules(doc).protocols[PROTOCOL].milestones[0].when

    assert when == {"repair": ("chronic", "acute"), "athlete": ("true",), "level": ("2",)}
    assert make_schedules().protocols[PROTOCOL].milestones[3].when == {"goal": ("sport",)}


def test_week_and_day_forms_mean_the_same_offset() -> None:
    """``week 6``, ``6 weeks``, ``day 42`` and ``42 days`` are all day 42."""
    offsets = []
    for text in ("week 6", "6 weeks", "day 42", "42 days"):
        doc = schedules_doc()
        milestone(doc, 2)["at"] = text
        offsets.append(make_schedules(doc).protocols[PROTOCOL].milestones[2].offset_days)

    assert offsets == [42, 42, 42, 42]


def test_fingerprint_is_stable_for_the_same_content(tmp_path: Path) -> None:
    """Comments and key order do not change the fingerprint: only content does."""
    doc = schedules_doc()
    doc["clinic"] = dict(reversed(doc["clinic"].items()))
    path = write_schedules(tmp_path, doc)
    path.write_text("# a coordinator's note\n" + path.read_text(encoding="utf-8"), encoding="utf-8")

    assert load_schedules(tmp_path).fingerprint == make_schedules().fingerprint


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda d: milestone(d, 0).update(at="day 2"), id="milestone-offset"),
        pytest.param(lambda d: milestone(d, 0).update(send_time="11:00"), id="send-time"),
        pytest.param(lambda d: d["defaults"].update(expires_after="3 days"), id="expiry"),
        pytest.param(lambda d: d["protocols"][PROTOCOL].update(version=2), id="version"),
        pytest.param(lambda d: d["clinic"].update(timezone="America/Chicago"), id="clinic-zone"),
    ],
)
def test_fingerprint_changes_when_content_changes(edit: Edit) -> None:
    """Any change to what is planned gives a different fingerprint."""
    doc = schedules_doc()
    edit(doc)

    assert make_schedules(doc).fingerprint != make_schedules().fingerprint


def test_numeric_and_text_keys_together_do_not_crash() -> None:
    """A ``when`` mapping mixing number and text keys still validates and fingerprints."""
    doc = schedules_doc()
    milestone(doc, 0)["when"] = {"goal": "sport", 2: "yes"}

    schedules = make_schedules(doc)

    assert schedules.protocols[PROTOCOL].milestones[0].when == {"goal": ("sport",), "2": ("yes",)}


def test_unquoted_times_in_yaml_stay_clock_times(tmp_path: Path) -> None:
    """Unquoted ``send_time: 10:00`` (sexagesimal 600 in YAML 1.1) still reads as 10:00."""
    text = (
        write_schedules(tmp_path)
        .read_text(encoding="utf-8")
        .replace("send_time: '10:00'", "send_time: 10:30")
        .replace("send_window: 09:00-20:00", "send_window: 08:00-21:00")
    )
    write_schedules(tmp_path, text)

    schedules = load_schedules(tmp_path)

    assert "send_time: 10:30" in text
    assert schedules.send_window == SendWindow(time(8, 0), time(21, 0))
    assert schedules.protocols[PROTOCOL].milestones[0].send_time == time(10, 30)


def test_shipped_schedules_file_is_valid() -> None:
    """The ``schedules.yaml`` shipped in the repository validates."""
    schedules = load_schedules(SHIPPED.parent)

    assert schedules.default_protocol in schedules.protocols


# --- each mistake names file, record and field ----------------------------------------------

CASES: list[Any] = [
    # (edit, record, field, words in the detail)
    pytest.param(
        lambda d: d.update(extra=1), "", "extra", "unknown key", id="unknown-top-level-key"
    ),
    pytest.param(
        lambda d: d["clinic"].update(fax="1"),
        "clinic",
        "fax",
        "unknown key",
        id="unknown-clinic-key",
    ),
    pytest.param(
        lambda d: d["clinic"].update({3: "x", "fax": "1"}),
        "clinic",
        "3",
        "unknown key",
        id="unknown-number-and-text-keys",
    ),
    pytest.param(
        lambda d: d["defaults"].update(quiet_hours="22:00-08:00"),
        "defaults",
        "quiet_hours",
        "unknown key",
        id="unknown-defaults-key",
    ),
    pytest.param(
        lambda d: d["protocols"][PROTOCOL].update(owner="x"),
        f"protocols.{PROTOCOL}",
        "owner",
        "unknown key",
        id="unknown-protocol-key",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(colour="red"),
        BRACE_OFF,
        "colour",
        "unknown key",
        id="unknown-milestone-key",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(repeat={"every": "1 week", "until": "week 8", "often": 2}),
        BRACE_OFF,
        "repeat.often",
        "unknown key",
        id="unknown-repeat-key",
    ),
    pytest.param(
        lambda d: milestone(d, 2).pop("at"), BRACE_OFF, "at", "is required", id="missing-at"
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(at="day one"), BRACE_OFF, "at", "day N", id="bad-at"
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(expires_after="2 fortnights"),
        BRACE_OFF,
        "expires_after",
        "duration",
        id="bad-milestone-duration",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(expires_after="0 days"),
        BRACE_OFF,
        "expires_after",
        "longer than zero",
        id="zero-expiry",
    ),
    pytest.param(
        lambda d: d["defaults"].update(expires_after="soon"),
        "defaults",
        "expires_after",
        "duration",
        id="bad-default-duration",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(send_time="21:30"),
        BRACE_OFF,
        "send_time",
        "outside the send window 09:00-20:00",
        id="send-time-after-window",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(send_time="20:00"),
        BRACE_OFF,
        "send_time",
        "outside",
        id="send-time-at-window-end",
    ),
    pytest.param(
        lambda d: d["defaults"].update(send_time="07:00"),
        "defaults",
        "send_time",
        "outside",
        id="default-send-time-before-window",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(send_time="25:00"),
        BRACE_OFF,
        "send_time",
        "local time",
        id="impossible-send-time",
    ),
    pytest.param(
        lambda d: d["defaults"].update(send_window="20:00-08:00"),
        "defaults",
        "send_window",
        "start before it ends",
        id="reversed-window",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(channels=["sms", "fax"]),
        BRACE_OFF,
        "channels",
        "unknown channel 'fax'",
        id="unknown-milestone-channel",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(channels=[]),
        BRACE_OFF,
        "channels",
        "at least one channel",
        id="no-milestone-channel",
    ),
    pytest.param(
        lambda d: d["defaults"].update(channels=["pager"]),
        "defaults",
        "channels",
        "unknown channel 'pager'",
        id="unknown-default-channel",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(id="day-one"),
        f"protocols.{PROTOCOL}.milestones[2] id=day-one",
        "id",
        "duplicate milestone id",
        id="duplicate-milestone-id",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(id="Brace Off"),
        f"protocols.{PROTOCOL}.milestones[2]",
        "id",
        "lowercase",
        id="bad-milestone-id",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(template="Brace_Removal"),
        BRACE_OFF,
        "template",
        "lowercase",
        id="bad-template-name",
    ),
    pytest.param(
        lambda d: d["defaults"].update(protocol="knee-repair"),
        "defaults",
        "protocol",
        "no protocol named 'knee-repair'",
        id="unknown-default-protocol",
    ),
    pytest.param(
        lambda d: d["defaults"].update(protocol=[PROTOCOL]),
        "defaults",
        "protocol",
        "no protocol named",
        id="default-protocol-not-text",
    ),
    pytest.param(
        lambda d: d["clinic"].update(timezone="Mars/Olympus_Mons"),
        "clinic",
        "timezone",
        "unknown IANA time zone 'Mars/Olympus_Mons'",
        id="bad-timezone",
    ),
    pytest.param(
        lambda d: d["clinic"].pop("timezone"), "clinic", "timezone", "is required", id="no-timezone"
    ),
    pytest.param(
        lambda d: d["clinic"].update(phone="555-01"),
        "clinic",
        "phone",
        "'555-01'",
        id="short-phone",
    ),
    pytest.param(
        lambda d: d["clinic"].update(phone="call us"),
        "clinic",
        "phone",
        "not a phone number",
        id="words-for-phone",
    ),
    pytest.param(
        lambda d: d["clinic"].update(phone="+1 011 555 0100"),
        "clinic",
        "phone",
        "not a valid phone number",
        id="impossible-area-code",
    ),
    pytest.param(
        lambda d: d["clinic"].update(country="XX"),
        "clinic",
        "country",
        "unknown ISO 3166 region",
        id="bad-country",
    ),
    pytest.param(
        lambda d: d["clinic"].update(coordinator_email="coordinator"),
        "clinic",
        "coordinator_email",
        "not a valid email",
        id="bad-coordinator-email",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(repeat={"every": "1 week", "until": "week 5"}),
        BRACE_OFF,
        "repeat.until",
        "before 'at'",
        id="repeat-until-before-at",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(repeat={"every": "0 days", "until": "week 8"}),
        BRACE_OFF,
        "repeat.every",
        "at least 1 day",
        id="repeat-every-zero",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(repeat={"until": "week 8"}),
        BRACE_OFF,
        "repeat.every",
        "day N",
        id="repeat-without-every",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(when={"goal": {"sport": True}}),
        BRACE_OFF,
        "when.goal",
        "a value or a list",
        id="when-nested-mapping",
    ),
    pytest.param(
        lambda d: d["protocols"][PROTOCOL].update(version=0),
        f"protocols.{PROTOCOL}",
        "version",
        "whole number",
        id="version-zero",
    ),
    pytest.param(
        lambda d: d["protocols"][PROTOCOL].update(milestones=[]),
        f"protocols.{PROTOCOL}",
        "milestones",
        "non-empty list",
        id="no-milestones",
    ),
    pytest.param(
        lambda d: d["protocols"].update({"Knee Repair": d["protocols"][OTHER_PROTOCOL]}),
        "protocols.Knee Repair",
        "",
        "lowercase",
        id="bad-protocol-id",
    ),
    pytest.param(
        lambda d: d.update(protocols={}),
        "protocols",
        "",
        "at least one protocol",
        id="no-protocols",
    ),
    pytest.param(
        lambda d: d["defaults"].update(languages=["english"]),
        "defaults",
        "languages",
        "'english'",
        id="bad-language",
    ),
]


@pytest.mark.parametrize(("edit", "record", "field", "detail"), CASES)
def test_mistake_names_file_record_and_field(
    tmp_path: Path, edit: Edit, record: str, field: str, detail: str
) -> None:
    """Each kind of mistake raises ScheduleError naming the file, the record and the field."""
    doc = schedules_doc()
    edit(doc)

    file, error = _failure(tmp_path, doc)

    assert (error.file, error.record, error.field) == (file, record, field)
    prefix = ": ".join(part for part in (file, record, field) if part)
    assert str(error).startswith(prefix + ": ")
    assert detail in str(error)


def test_schedule_error_is_a_config_error() -> None:
    """ScheduleError belongs to the ConfigError branch of the one exception tree."""
    doc = schedules_doc()
    doc["clinic"]["timezone"] = "Nowhere/Town"

    with pytest.raises(ConfigError, match="clinic: timezone: unknown IANA"):
        parse_schedules(doc, "schedules.yaml")


def test_milestones_in_every_protocol_are_checked() -> None:
    """A mistake in the second protocol names that protocol's record."""
    doc = schedules_doc()
    milestone(doc, 0, OTHER_PROTOCOL)["at"] = "tomorrow"

    with pytest.raises(ScheduleError) as caught:
        parse_schedules(doc, "schedules.yaml")

    assert caught.value.record == f"protocols.{OTHER_PROTOCOL}.milestones[0] id=start"
    assert caught.value.field == "at"


# --- the file itself ------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path: Path) -> None:
    """A config directory without schedules.yaml raises ScheduleError naming the missing file."""
    with pytest.raises(ScheduleError) as caught:
        load_schedules(tmp_path)

    assert caught.value.file == str(tmp_path / "schedules.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'schedules.yaml'}: file not found")


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        pytest.param("clinic: [unclosed\n", "not valid YAML", id="unclosed-bracket"),
        pytest.param("clinic:\n\tname: x\n", "not valid YAML", id="tab-indent"),
        pytest.param("- just\n- a list\n", "expected a mapping", id="top-level-list"),
        pytest.param("", "expected a mapping", id="empty-file"),
    ],
)
def test_unreadable_yaml_is_a_schedule_error(tmp_path: Path, text: str, detail: str) -> None:
    """A file that is not a YAML mapping raises ScheduleError naming the file, never a traceback."""
    file, error = _failure(tmp_path, text)

    assert error.file == file
    assert str(error).startswith(file + ": ")
    assert detail in str(error)


def test_non_utf8_file_is_a_schedule_error(tmp_path: Path) -> None:
    """A file saved in Latin-1 raises ScheduleError, not UnicodeDecodeError."""
    path = tmp_path / "schedules.yaml"
    path.write_bytes("clinic:\n  name: Clínica\n".encode("latin-1"))

    with pytest.raises(ScheduleError, match="not valid YAML: not UTF-8") as caught:
        load_schedules(tmp_path)

    assert caught.value.file == str(path)


def test_protocol_written_twice_is_an_error(tmp_path: Path) -> None:
    """A protocol key written twice is refused rather than silently dropping the first one."""
    text = write_schedules(tmp_path).read_text(encoding="utf-8")
    protocols = text.index("protocols:\n") + len("protocols:\n")
    duplicated = text + text[protocols:]
    file, error = _failure(tmp_path, duplicated)

    assert error.file == file
    assert f"found duplicate key '{PROTOCOL}'" in str(error)


def test_directory_in_place_of_file_is_a_schedule_error(tmp_path: Path) -> None:
    """A directory called schedules.yaml raises ScheduleError saying it cannot be read."""
    (tmp_path / "schedules.yaml").mkdir()

    with pytest.raises(ScheduleError, match="cannot read"):
        load_schedules(tmp_path)


# --- every text is bounded ------------------------------------------------------------------

LONG_ID = "x" * 65
OVER_LONG: list[Any] = [
    # (edit, record, field, limit)
    pytest.param(lambda d: d["clinic"].update(name="N" * 101), "clinic", "name", 100, id="name"),
    pytest.param(
        lambda d: d["clinic"].update(short_name="S" * 101), "clinic", "short_name", 100, id="short"
    ),
    pytest.param(lambda d: d["clinic"].update(phone="2" * 33), "clinic", "phone", 32, id="phone"),
    pytest.param(
        lambda d: d["clinic"].update(timezone="America/" + "x" * 60),
        "clinic",
        "timezone",
        64,
        id="timezone",
    ),
    pytest.param(
        lambda d: d["protocols"][PROTOCOL].update(title="T" * 201),
        f"protocols.{PROTOCOL}",
        "title",
        200,
        id="title",
    ),
    pytest.param(
        lambda d: d["protocols"].update({LONG_ID: d["protocols"].pop(OTHER_PROTOCOL)}),
        f"protocols.{'x' * 40}... (65 characters)",
        "",
        64,
        id="protocol-id",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(id=LONG_ID),
        f"protocols.{PROTOCOL}.milestones[2]",
        "id",
        64,
        id="milestone-id",
    ),
    pytest.param(
        lambda d: milestone(d, 2).update(template=LONG_ID),
        BRACE_OFF,
        "template",
        64,
        id="template",
    ),
    pytest.param(
        lambda d: milestone(d, 3).update(when={"goal": "s" * 201}),
        f"protocols.{PROTOCOL}.milestones[3] id=sport-review",
        "when.goal",
        200,
        id="when-value",
    ),
    pytest.param(
        lambda d: milestone(d, 0).update(expires_after="1" * 1001),
        f"protocols.{PROTOCOL}.milestones[0]",
        "expires_after",
        1000,
        id="any-text",
    ),
]


@pytest.mark.parametrize(("edit", "record", "field", "limit"), OVER_LONG)
def test_over_long_text_is_refused_by_its_length(
    tmp_path: Path, edit: Edit, record: str, field: str, limit: int
) -> None:
    """A text over its limit raises ScheduleError naming it and both lengths, not the text."""
    doc = schedules_doc()
    edit(doc)

    _, error = _failure(tmp_path, doc)

    assert (error.record, error.field) == (record, field)
    assert error.detail.endswith(f"characters long; the limit is {limit:,}")
    assert len(str(error)) < len(str(tmp_path)) + 200


def test_repeat_planning_too_many_messages_is_refused(tmp_path: Path) -> None:
    """A repeat that would plan more than 500 messages per patient and channel is refused."""
    doc = schedules_doc()
    milestone(doc, 1)["repeat"] = {"every": "1 day", "until": "week 520"}

    _, error = _failure(tmp_path, doc)

    assert (error.record, error.field) == (f"protocols.{PROTOCOL}", "milestones")
    assert error.detail.startswith("plan 3,637 messages per patient and channel")
    assert "the limit is 500" in error.detail


def test_too_many_milestones_are_refused(tmp_path: Path) -> None:
    """A protocol of more than 100 milestones is refused."""
    doc = schedules_doc()
    doc["protocols"][OTHER_PROTOCOL]["milestones"] = [
        {"id": f"m{i}", "at": f"day {i}"} for i in range(101)
    ]

    _, error = _failure(tmp_path, doc)

    assert error.record == f"protocols.{OTHER_PROTOCOL}"
    assert error.detail == "has 101 milestones; the limit is 100"


# --- the dashboard's colours --------------------------------------------------------------


def test_clinic_colours_are_read_and_leave_the_fingerprint_alone() -> None:
    """``clinic.colours`` sets the dashboard's colours (lower case) without changing the plan's fingerprint."""
    plain = make_schedules()
    doc = schedules_doc()
    doc["clinic"]["colours"] = {"primary": "#0A3D62", "accent": "#c0392b"}
    coloured = make_schedules(doc)
    assert (coloured.clinic.colours.primary, coloured.clinic.colours.accent) == (
        "#0a3d62",
        "#c0392b",
    )
    assert plain.clinic.colours.primary == "#1f4e79"
    assert coloured.fingerprint == plain.fingerprint


@pytest.mark.parametrize(
    ("colours", "field", "message"),
    [
        ({"primary": "red"}, "primary", "is not a colour like '#1f4e79'"),
        ({"accent": "#12345"}, "accent", "is not a colour like '#1f4e79'"),
        ({"primary": "#fff;} body{display:none"}, "primary", "is not a colour"),
        ({"header": "#ffffff"}, "header", "unknown"),
    ],
)
def test_a_colour_that_is_not_hex_is_refused(
    tmp_path: Path, colours: dict[str, str], field: str, message: str
) -> None:
    """Only ``#rgb`` and ``#rrggbb`` reach the stylesheet: anything else names clinic.colours and the field."""
    doc = schedules_doc()
    doc["clinic"]["colours"] = colours
    _, error = _failure(tmp_path, doc)
    assert error.record == "clinic.colours"
    assert field in str(error)
    assert message in str(error)
