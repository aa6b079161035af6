"""Reading and validating the patients file, YAML and CSV (reminders.patients)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from reminders.errors import ConfigError, PatientFileError
from reminders.models import Patient, Schedules
from reminders.patients import PatientFile, Problem, patients_path
from reminders.testing import (
    OTHER_PROTOCOL,
    PROTOCOL,
    make_schedules,
    patient_record,
    write_patients,
)
from reminders.validation import load_patients

FORMATS = ["yaml", "csv"]


@pytest.fixture
def schedules() -> Schedules:
    """The helper's valid schedules: default protocol demo-repair, clinic in New York, en+es."""
    return make_schedules()


def _load(
    tmp_path: Path, schedules: Schedules, records: list[dict[str, Any]], fmt: str = "yaml"
) -> PatientFile:
    """Write ``records`` as ``patients.<fmt>`` and read them back."""
    return load_patients(write_patients(tmp_path / f"patients.{fmt}", records), schedules)


def _load_text(
    tmp_path: Path, schedules: Schedules, text: str, name: str = "patients.yaml"
) -> PatientFile:
    """Write raw file text and read it back."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_patients(path, schedules)


def _label(fmt: str, index: int, patient_id: str | None) -> str:
    """How a record is named: ``patients[1] id=P-1002`` in YAML, ``row 3 id=P-1002`` in CSV."""
    position = f"patients[{index}]" if fmt == "yaml" else f"row {index + 2}"
    return f"{position} id={patient_id}" if patient_id else position


def _only_problem(result: PatientFile, field: str) -> Problem:
    """The one problem about ``field``."""
    matching = [p for p in result.problems if p.field == field]
    assert len(matching) == 1, result.problems
    return matching[0]


# --- YAML and CSV read alike ----------------------------------------------------------------

FULL_RECORDS: list[dict[str, Any]] = [
    patient_record(
        "P-1001",
        first_name="Dana",
        last_name="Reyes",
        phone="(201) 555-0123",
        email="Dana.Reyes@Example.COM",
        surgery_date="2026-11-20",
        protocol=OTHER_PROTOCOL,
        timezone="America/Los_Angeles",
        language="es",
        channels=["sms", "email"],
        status="paused",
        attributes={"repair": "chronic", "goal": "sport"},
    ),
    patient_record("P-1002", first_name="Sam", phone=None, email="sam@example.com"),
    patient_record("P-1003", first_name="Alex", phone="201-555-0199", status="withdrawn"),
]


def test_yaml_and_csv_give_identical_patients(tmp_path: Path, schedules: Schedules) -> None:
    """The same records as YAML and as CSV (``sms;email``, ``k=v; k=v``) give equal Patients."""
    from_yaml = _load(tmp_path, schedules, FULL_RECORDS, "yaml")
    from_csv = _load(tmp_path, schedules, FULL_RECORDS, "csv")

    assert from_yaml.problems == []
    assert from_csv.problems == []
    assert from_yaml.patients == from_csv.patients
    assert [p.fingerprint() for p in from_yaml.patients] == [
        p.fingerprint() for p in from_csv.patients
    ]
    assert len(from_yaml.patients) == 3


def test_full_record_is_read_field_by_field(tmp_path: Path, schedules: Schedules) -> None:
    """Every field of a complete record lands in the Patient, normalised."""
    dana = _load(tmp_path, schedules, FULL_RECORDS[:1]).patients[0]

    assert dana == Patient(
        id="P-1001",
        first_name="Dana",
        last_name="Reyes",
        phone="+12015550123",
        email="Dana.Reyes@example.com",
        surgery_date=date(2026, 11, 20),
        protocol=OTHER_PROTOCOL,
        timezone="America/Los_Angeles",
        language="es",
        channels=("sms", "email"),
        status="paused",
        attributes={"repair": "chronic", "goal": "sport"},
    )


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "written",
    ["(201) 555-0123", "201-555-0123", "201.555.0123", "1 201 555 0123", "+1 (201) 555-0123"],
)
def test_national_phone_becomes_e164(
    tmp_path: Path, schedules: Schedules, fmt: str, written: str
) -> None:
    """A US number in national format (the clinic's country) is stored in E.164."""
    result = _load(tmp_path, schedules, [patient_record(phone=written)], fmt)

    assert result.problems == []
    assert result.patients[0].phone == "+12015550123"


@pytest.mark.parametrize("fmt", FORMATS)
def test_email_is_normalised(tmp_path: Path, schedules: Schedules, fmt: str) -> None:
    """Spaces around an address are dropped and the domain is lower-cased."""
    result = _load(tmp_path, schedules, [patient_record(email="  dana@EXAMPLE.com ")], fmt)

    assert result.patients[0].email == "dana@example.com"


@pytest.mark.parametrize("fmt", FORMATS)
def test_defaults_fill_optional_fields(tmp_path: Path, schedules: Schedules, fmt: str) -> None:
    """Missing protocol, timezone, language, status and channels take the documented defaults."""
    records = [
        patient_record("P-1001", phone="+12015550123", email="dana@example.com"),
        patient_record("P-1002", phone="+12015550100"),
        patient_record("P-1003", phone=None, email="sam@example.com"),
    ]

    both, sms_only, email_only = _load(tmp_path, schedules, records, fmt).patients

    assert both.protocol == PROTOCOL
    assert both.timezone == "America/New_York"
    assert both.language == "en"
    assert both.status == "active"
    assert both.last_name == ""
    assert both.attributes == {}
    assert both.channels == ("sms", "email")
    assert sms_only.channels == ("sms",)
    assert sms_only.email is None
    assert email_only.channels == ("email",)
    assert email_only.phone is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_channels_narrow_what_contact_details_allow(
    tmp_path: Path, schedules: Schedules, fmt: str
) -> None:
    """Listed channels are kept in order, once each, even with both contact details present."""
    records = [
        patient_record("P-1001", email="dana@example.com", channels=["email"]),
        patient_record("P-1002", email="sam@example.com", channels=["email", "sms", "email"]),
    ]

    email_only, both = _load(tmp_path, schedules, records, fmt).patients

    assert email_only.channels == ("email",)
    assert both.channels == ("email", "sms")


def test_csv_channels_accept_commas_and_spaces(tmp_path: Path, schedules: Schedules) -> None:
    """CSV channel cells may separate with ``;``, ``,`` or spaces."""
    text = (
        "id,first_name,phone,email,surgery_date,channels\n"
        "P-1001,Dana,+12015550123,dana@example.com,2026-11-20,sms; email\n"
        'P-1002,Sam,+12015550100,sam@example.com,2026-11-20,"email, sms"\n'
        "P-1003,Alex,+12015550199,alex@example.com,2026-11-20,sms email\n"
    )

    result = _load_text(tmp_path, schedules, text, "patients.csv")

    assert [p.channels for p in result.patients] == [
        ("sms", "email"),
        ("email", "sms"),
        ("sms", "email"),
    ]


def test_withdrawn_patient_needs_no_contact_details(tmp_path: Path, schedules: Schedules) -> None:
    """A withdrawn record without phone or email is valid and has no channels."""
    record = patient_record(phone=None, status="withdrawn")

    result = _load(tmp_path, schedules, [record])

    assert result.problems == []
    assert result.patients[0].channels == ()


def test_csv_header_with_byte_order_mark(tmp_path: Path, schedules: Schedules) -> None:
    """A CSV saved by a spreadsheet with a UTF-8 byte order mark still has an ``id`` column."""
    path = write_patients(tmp_path / "patients.csv", [patient_record()])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())

    result = load_patients(path, schedules)

    assert result.problems == []
    assert [p.id for p in result.patients] == ["P-1001"]


# --- YAML 1.2 scalars -----------------------------------------------------------------------


def test_yaml_no_and_times_stay_strings(tmp_path: Path, schedules: Schedules) -> None:
    """Unquoted ``NO``, ``no``, ``yes`` and ``10:00`` stay text (YAML 1.1 would change them)."""
    text = """\
patients:
  - id: P-1001
    first_name: Dana
    last_name: no
    phone: "+12015550123"
    surgery_date: 2026-11-20
    attributes: {country: NO, call_after: 10:00, brace: yes, athlete: true, level: 2}
"""
    patient = _load_text(tmp_path, schedules, text).patients[0]

    assert patient.last_name == "no"
    assert patient.attributes == {
        "country": "NO",
        "call_after": "10:00",
        "brace": "yes",
        "athlete": "true",
        "level": "2",
    }


def test_yaml_numbers_with_leading_zeros_stay_as_written(
    tmp_path: Path, schedules: Schedules
) -> None:
    """An unquoted id like ``00123`` stays ``00123`` (YAML 1.1 reads octal 83; ``09`` crashed)."""
    text = """\
patients:
  - {id: 00123, first_name: Dana, phone: 2015550123, surgery_date: 2026-11-20}
  - {id: 09, first_name: Sam, phone: 2015550100, surgery_date: 2026-11-20}
  - {id: 1004, first_name: Alex, phone: 2015550199, surgery_date: 2026-11-20}
"""
    result = _load_text(tmp_path, schedules, text)

    assert result.problems == []
    assert [p.id for p in result.patients] == ["00123", "09", "1004"]
    assert result.patients[0].phone == "+12015550123"


def test_yaml_dates_are_read_as_dates(tmp_path: Path, schedules: Schedules) -> None:
    """Quoted and unquoted ``surgery_date`` values give the same date."""
    text = """\
patients:
  - {id: P-1001, first_name: Dana, phone: "+12015550123", surgery_date: 2026-11-20}
  - {id: P-1002, first_name: Sam, phone: "+12015550100", surgery_date: "2026-11-20"}
"""
    result = _load_text(tmp_path, schedules, text)

    assert [p.surgery_date for p in result.patients] == [date(2026, 11, 20)] * 2


@pytest.mark.parametrize(
    "written", ["2026-02-30", "2026-11-20 10:00", "2026-11-20T10:00:00Z", "20/11/2026"]
)
def test_yaml_impossible_date_is_a_problem_for_that_record_only(
    tmp_path: Path, schedules: Schedules, written: str
) -> None:
    """An unquoted impossible date or a date with a time is one record's problem, not the file's."""
    text = f"""\
patients:
  - {{id: P-1001, first_name: Dana, phone: "+12015550123", surgery_date: {written}}}
  - {{id: P-1002, first_name: Sam, phone: "+12015550100", surgery_date: 2026-11-20}}
"""
    result = _load_text(tmp_path, schedules, text)

    problem = _only_problem(result, "surgery_date")
    assert str(problem).startswith(
        f"{tmp_path / 'patients.yaml'}: patients[0] id=P-1001: surgery_date: "
    )
    assert [p.id for p in result.patients] == ["P-1002"]


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path, schedules: Schedules) -> None:
    """A record merged from another with ``<<`` may override the merged keys."""
    text = """\
patients:
  - &dana {id: P-1001, first_name: Dana, phone: "+12015550123", surgery_date: 2026-11-20,
           timezone: America/Chicago}
  - {<<: *dana, id: P-1002, first_name: Sam, timezone: America/Denver}
"""
    result = _load_text(tmp_path, schedules, text)

    assert result.problems == []
    assert [(p.id, p.first_name, p.timezone) for p in result.patients] == [
        ("P-1001", "Dana", "America/Chicago"),
        ("P-1002", "Sam", "America/Denver"),
    ]
    assert {p.surgery_date for p in result.patients} == {date(2026, 11, 20)}


# --- a bad field is one record's problem ----------------------------------------------------

BAD_FIELDS: list[Any] = [
    # (fields replaced in record P-1002, field named, words in the message)
    pytest.param({"phone": "555-01"}, "phone", "'555-01'", id="short-phone"),
    pytest.param({"phone": "+1 011 555 0100"}, "phone", "not a valid phone", id="invalid-phone"),
    pytest.param({"phone": "call me"}, "phone", "not a phone number", id="words-for-phone"),
    pytest.param({"email": "sam.example.com"}, "email", "not a valid email", id="email-without-at"),
    pytest.param({"email": "sam@"}, "email", "not a valid email", id="email-without-domain"),
    pytest.param(
        {"surgery_date": "2026-02-30"}, "surgery_date", "YYYY-MM-DD", id="impossible-date"
    ),
    pytest.param({"surgery_date": "11/20/2026"}, "surgery_date", "YYYY-MM-DD", id="us-date"),
    pytest.param({"surgery_date": None}, "surgery_date", "is required", id="no-date"),
    pytest.param({"first_name": None}, "first_name", "is required", id="no-first-name"),
    pytest.param({"first_name": "  "}, "first_name", "is required", id="blank-first-name"),
    pytest.param(
        {"protocol": "knee-repair"}, "protocol", "unknown protocol 'knee-repair'", id="protocol"
    ),
    pytest.param({"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown IANA", id="timezone"),
    pytest.param({"language": "fr"}, "language", "unsupported language 'fr'", id="language"),
    pytest.param({"status": "asleep"}, "status", "expected one of active", id="status"),
    pytest.param(
        {"status": "completed"}, "status", "expected one of active", id="status-completed"
    ),
    pytest.param({"channels": ["sms", "fax"]}, "channels", "unknown channel 'fax'", id="channel"),
    pytest.param({"channels": ["email"]}, "channels", "no email", id="email-without-address"),
    pytest.param(
        {"channels": ["sms"], "phone": None, "email": "sam@example.com"},
        "channels",
        "no phone",
        id="sms-without-phone",
    ),
    pytest.param(
        {"phone": None, "email": None}, "channels", "cannot be reached", id="no-contact-details"
    ),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("fields", "field", "words"), BAD_FIELDS)
def test_bad_field_is_reported_and_others_parse(
    tmp_path: Path, fmt: str, fields: dict[str, Any], field: str, words: str
) -> None:
    """A bad field gives one Problem naming file, record and field; the other records parse."""
    records = [
        patient_record("P-1001"),
        patient_record("P-1002", **{"first_name": "Sam", **fields}),
        patient_record("P-1003", first_name="Alex"),
    ]

    result = _load(tmp_path, make_schedules(), records, fmt)

    problem = _only_problem(result, field)
    file = str(tmp_path / f"patients.{fmt}")
    assert str(problem).startswith(f"{file}: {_label(fmt, 1, 'P-1002')}: {field}: ")
    assert words in problem.message
    assert problem.patient_id == "P-1002"
    assert result.rejected_ids == {"P-1002"}
    assert [p.id for p in result.patients] == ["P-1001", "P-1003"]


def test_yaml_unknown_field_is_that_records_problem(tmp_path: Path, schedules: Schedules) -> None:
    """In YAML a field the service does not know is a problem of its record only.

    (In CSV an unknown column is one error for the whole file: see test_spreadsheet.py.)
    """
    records = [patient_record("P-1001"), patient_record("P-1002", nickname="Sammy")]

    result = _load(tmp_path, schedules, records)

    assert str(_only_problem(result, "nickname")).endswith(
        "nickname: unknown field (known: "
        "id, first_name, last_name, phone, email, surgery_date, protocol, timezone, language, "
        "channels, status, attributes)"
    )
    assert [p.id for p in result.patients] == ["P-1001"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_bad_field_of_a_record_is_reported(
    tmp_path: Path, schedules: Schedules, fmt: str
) -> None:
    """One record with several mistakes gets one Problem per field, not just the first."""
    record = patient_record(email="nope", surgery_date="soon", language="fr", status="asleep")

    result = _load(tmp_path, schedules, [record], fmt)

    assert [p.field for p in result.problems] == ["email", "surgery_date", "language", "status"]
    assert result.patients == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_record_without_id_is_named_by_position(
    tmp_path: Path, schedules: Schedules, fmt: str
) -> None:
    """A record with no id is named by its position alone and rejects no stored patient."""
    records = [patient_record("P-1001"), patient_record(None, first_name="Sam")]

    result = _load(tmp_path, schedules, records, fmt)

    problem = _only_problem(result, "id")
    assert (
        str(problem) == f"{tmp_path / f'patients.{fmt}'}: {_label(fmt, 1, None)}: id: is required"
    )
    assert problem.patient_id is None
    assert result.rejected_ids == set()
    assert [p.id for p in result.patients] == ["P-1001"]


def test_yaml_blank_phone_does_not_count_as_a_phone(tmp_path: Path, schedules: Schedules) -> None:
    """``phone: " "`` with ``channels: [sms]`` is a problem, not an SMS patient with no number."""
    result = _load(tmp_path, schedules, [patient_record(phone="  ", channels=["sms"])])

    assert result.patients == []
    assert "sms is listed but there is no phone" in str(_only_problem(result, "channels"))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param(
            "patients.yaml",
            "patients:\n  - {id: P-1001, first_name: Dana, phone: '+12015550123',"
            " surgery_date: 2026-11-20, channels: []}\n",
            id="yaml-empty-list",
        ),
        pytest.param(
            "patients.csv",
            "id,first_name,phone,surgery_date,channels\nP-1001,Dana,+12015550123,2026-11-20,;\n",
            id="csv-only-separators",
        ),
    ],
)
def test_empty_channel_list_is_a_problem(
    tmp_path: Path, schedules: Schedules, name: str, text: str
) -> None:
    """An active patient whose channel list is empty would get nothing: that is a problem."""
    result = _load_text(tmp_path, schedules, text, name)

    assert result.patients == []
    assert "at least one channel" in str(_only_problem(result, "channels"))


def test_yaml_record_that_is_not_a_mapping(tmp_path: Path, schedules: Schedules) -> None:
    """A list item that is plain text is reported by position; the other records parse."""
    text = (
        "patients:\n"
        "  - {id: P-1001, first_name: Dana, phone: '+12015550123', surgery_date: 2026-11-20}\n"
        "  - P-1002 Sam\n"
    )

    result = _load_text(tmp_path, schedules, text)

    file = tmp_path / "patients.yaml"
    assert [str(p) for p in result.problems] == [
        f"{file}: patients[1]: expected a record with fields like 'id: P-1001'"
    ]
    assert [p.id for p in result.patients] == ["P-1001"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param(
            {"attributes": {"repair": ["acute", "chronic"]}}, "attributes.repair", id="list"
        ),
        pytest.param({"attributes": {"repair": None}}, "attributes.repair", id="null"),
        pytest.param({"attributes": ["repair"]}, "attributes", id="not-a-mapping"),
        pytest.param({"channels": 5}, "channels", id="channels-number"),
        pytest.param({"first_name": {"given": "Dana"}}, "first_name", id="name-mapping"),
    ],
)
def test_yaml_wrong_shape_of_field(
    tmp_path: Path, schedules: Schedules, fields: dict[str, Any], field: str
) -> None:
    """A YAML field holding the wrong kind of value is a problem naming that field."""
    result = _load(tmp_path, schedules, [patient_record(**fields)])

    assert result.patients == []
    assert str(_only_problem(result, field)).startswith(
        f"{tmp_path / 'patients.yaml'}: patients[0] id=P-1001: {field}: "
    )


def test_csv_attributes_without_equals_sign(tmp_path: Path, schedules: Schedules) -> None:
    """A CSV attributes cell not written ``key=value; key=value`` is a problem for that row."""
    text = (
        "id,first_name,phone,surgery_date,attributes\n"
        "P-1001,Dana,+12015550123,2026-11-20,repair=chronic; sport\n"
        "P-1002,Sam,+12015550100,2026-11-20,repair=acute;\n"
    )

    result = _load_text(tmp_path, schedules, text, "patients.csv")

    problem = _only_problem(result, "attributes")
    assert str(problem).startswith(f"{tmp_path / 'patients.csv'}: row 2 id=P-1001: attributes: ")
    assert [(p.id, p.attributes) for p in result.patients] == [("P-1002", {"repair": "acute"})]


# --- duplicate ids --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_duplicate_ids_reject_every_record_with_that_id(
    tmp_path: Path, schedules: Schedules, fmt: str
) -> None:
    """Two records with one id are both rejected (neither wins); other records parse."""
    records = [
        patient_record("P-1001", first_name="Dana"),
        patient_record("P-1002", first_name="Sam"),
        patient_record(" P-1001 ", first_name="Alex"),
    ]

    result = _load(tmp_path, schedules, records, fmt)

    file = str(tmp_path / f"patients.{fmt}")
    assert [str(p) for p in result.problems] == [
        f"{file}: {_label(fmt, 0, 'P-1001')}: id: duplicate id: every record with it is skipped",
        f"{file}: {_label(fmt, 2, 'P-1001')}: id: duplicate id: every record with it is skipped",
    ]
    assert result.rejected_ids == {"P-1001"}
    assert [p.id for p in result.patients] == ["P-1002"]


# --- the file as a whole --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("patients.yaml", "", id="yaml-empty-file"),
        pytest.param("patients.yaml", "# every patient discharged\n", id="yaml-only-comment"),
        pytest.param("patients.yaml", "patients: []\n", id="yaml-empty-list"),
        pytest.param("patients.yaml", "patients:\n", id="yaml-null-list"),
        pytest.param("patients.csv", "", id="csv-empty-file"),
        pytest.param("patients.csv", "id,first_name,phone,surgery_date\n", id="csv-header-only"),
        pytest.param(
            "patients.csv", "id,first_name,phone,surgery_date\n,,,\n , ,,\n", id="csv-empty-rows"
        ),
    ],
)
def test_emptied_file_yields_no_patients_and_no_problems(
    tmp_path: Path, schedules: Schedules, name: str, text: str
) -> None:
    """An emptied file reads as zero patients without error (the sync guards mass withdrawal)."""
    result = _load_text(tmp_path, schedules, text, name)

    assert result.patients == []
    assert result.problems == []


def test_csv_rows_are_numbered_as_in_a_spreadsheet(tmp_path: Path, schedules: Schedules) -> None:
    """CSV problems name the spreadsheet row: the header is row 1, blank rows still count."""
    text = (
        "id,first_name,phone,surgery_date\n"
        "P-1001,Dana,+12015550123,2026-11-20\n"
        ",,,\n"
        "P-1002,Sam,+12015550100,someday\n"
    )

    result = _load_text(tmp_path, schedules, text, "patients.csv")

    assert [p.record for p in result.problems] == ["row 4 id=P-1002"]
    assert [p.id for p in result.patients] == ["P-1001"]


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        pytest.param("patients.yaml", b"patients: [unclosed\n", "not valid YAML", id="bad-yaml"),
        pytest.param("patients.yaml", b"- id: P-1001\n", "top-level 'patients:'", id="top-list"),
        pytest.param(
            "patients.yaml", b"patients: []\nclinic: x\n", "nothing else", id="extra-top-key"
        ),
        pytest.param("patients.yaml", b"patients: {id: P-1001}\n", "must be a list", id="mapping"),
        pytest.param(
            "patients.yaml",
            b"patients:\n  - {id: P-1001}\npatients:\n  - {id: P-1002}\n",
            "duplicate key 'patients'",
            id="patients-key-twice",
        ),
        pytest.param(
            "patients.yaml",
            "patients:\n  - {id: P-1001, first_name: José}\n".encode("latin-1"),
            "not valid YAML: not UTF-8",
            id="yaml-latin-1",
        ),
        pytest.param(
            "patients.csv",
            "id,first_name,surgery_date\nP-1001,José,2026-11-20\n".encode("latin-1"),
            "is not UTF-8 text",
            id="csv-latin-1",
        ),
    ],
)
def test_unreadable_file_raises_patient_file_error(
    tmp_path: Path, schedules: Schedules, name: str, content: bytes, words: str
) -> None:
    """A file that cannot be read as a patients list raises PatientFileError naming the file."""
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(PatientFileError) as caught:
        load_patients(path, schedules)

    assert caught.value.file == str(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert words in str(caught.value)
    assert isinstance(caught.value, ConfigError)


@pytest.mark.parametrize("name", ["patients.yaml", "patients.csv"])
def test_missing_file_raises_patient_file_error(
    tmp_path: Path, schedules: Schedules, name: str
) -> None:
    """A patients file that does not exist raises PatientFileError saying so."""
    path = tmp_path / name

    with pytest.raises(PatientFileError, match="file not found"):
        load_patients(path, schedules)


# --- where the file is ----------------------------------------------------------------------


def test_patients_file_defaults_to_yaml_beside_schedules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an override the file is ``patients.yaml`` in the config directory."""
    monkeypatch.delenv("REMINDERS_PATIENTS", raising=False)

    assert patients_path(tmp_path) == tmp_path / "patients.yaml"


def test_patients_csv_is_used_when_there_is_no_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lone ``patients.csv`` in the config directory is picked up."""
    monkeypatch.delenv("REMINDERS_PATIENTS", raising=False)
    (tmp_path / "patients.csv").write_text("id\n", encoding="utf-8")

    assert patients_path(tmp_path) == tmp_path / "patients.csv"


def test_patients_path_override_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--patients`` beats ``REMINDERS_PATIENTS``, which beats the config directory."""
    monkeypatch.setenv("REMINDERS_PATIENTS", str(tmp_path / "from-env.csv"))

    assert patients_path(tmp_path) == tmp_path / "from-env.csv"
    assert patients_path(tmp_path, tmp_path / "given.yaml") == tmp_path / "given.yaml"


# --- every field is bounded -----------------------------------------------------------------

OVER_LONG: list[Any] = [
    # (fields replaced in record P-1002, field named, its limit)
    pytest.param({"first_name": "A" * 100_000}, "first_name", 100, id="first_name"),
    pytest.param({"last_name": "B" * 101}, "last_name", 100, id="last_name"),
    pytest.param({"phone": "2" * 33}, "phone", 32, id="phone"),
    pytest.param({"email": "d" * 250 + "@example.com"}, "email", 254, id="email"),
    pytest.param({"surgery_date": "2" * 33}, "surgery_date", 32, id="surgery_date"),
    pytest.param({"protocol": "p" * 65}, "protocol", 64, id="protocol"),
    pytest.param({"timezone": "America/" + "x" * 60}, "timezone", 64, id="timezone"),
    pytest.param({"language": "e" * 17}, "language", 16, id="language"),
    pytest.param({"status": "a" * 17}, "status", 16, id="status"),
    pytest.param({"channels": "sms;" * 9}, "channels", 32, id="channels"),
    pytest.param({"attributes": {"goal": "s" * 201}}, "attributes.goal", 200, id="attribute"),
    pytest.param(
        {"attributes": {"k" * 65: "v"}},
        "attributes." + "k" * 40 + "... (65 characters)",
        64,
        id="attribute-name",
    ),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("fields", "field", "limit"), OVER_LONG)
def test_over_long_field_is_that_records_problem(
    tmp_path: Path, fmt: str, fields: dict[str, Any], field: str, limit: int
) -> None:
    """A field longer than its limit is a problem of its record, said in lengths, not echoed."""
    records = [
        patient_record("P-1001"),
        patient_record("P-1002", **fields),
        patient_record("P-1003"),
    ]

    result = _load(tmp_path, make_schedules(), records, fmt)

    problem = _only_problem(result, field)
    assert problem.record == _label(fmt, 1, "P-1002")
    assert problem.message.endswith(f"characters long; the limit is {limit}")
    assert len(str(problem)) < len(str(tmp_path)) + 200
    assert [p.id for p in result.patients] == ["P-1001", "P-1003"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_over_long_id_is_reported_shortened(tmp_path: Path, schedules: Schedules, fmt: str) -> None:
    """An id over 64 characters rejects its record, whose label shows only its first 64."""
    long_id = "P" * 10_000
    records = [patient_record("P-1001"), patient_record(long_id)]

    result = _load(tmp_path, schedules, records, fmt)

    problem = _only_problem(result, "id")
    assert problem.message == "is 10,000 characters long; the limit is 64"
    assert problem.record == _label(fmt, 1, "P" * 64 + "... (10,000 characters)")
    assert [p.id for p in result.patients] == ["P-1001"]


def test_too_many_attributes_is_a_problem(tmp_path: Path, schedules: Schedules) -> None:
    """More than 20 attributes on one patient is a problem of that record."""
    attributes = {f"key{i}": "x" for i in range(21)}
    records = [patient_record("P-1001"), patient_record("P-1002", attributes=attributes)]

    result = _load(tmp_path, schedules, records)

    assert _only_problem(result, "attributes").message == "has 21 attributes; the limit is 20"
    assert [p.id for p in result.patients] == ["P-1001"]


def test_yaml_id_that_is_a_list_is_a_problem(tmp_path: Path, schedules: Schedules) -> None:
    """An id written as a list is not taken as its text form: the record reports it."""
    text = """\
patients:
  - {id: P-1001, first_name: Dana, phone: "+12015550123", surgery_date: 2026-11-20}
  - {id: [P-1, P-2], first_name: Sam, phone: "+12015550124", surgery_date: 2026-11-20}
"""
    result = _load_text(tmp_path, schedules, text)

    problem = _only_problem(result, "id")
    assert (problem.record, problem.message) == ("patients[1]", "expected text, got list")
    assert [p.id for p in result.patients] == ["P-1001"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("id", "P-1002\r\nBcc: all@example.com", id="id-with-line-break"),
        pytest.param("first_name", "Sam\x1b[2J", id="name-with-escape-sequence"),
        pytest.param("attributes", {"goal": "spo\nrt"}, id="attribute-with-line-break"),
    ],
)
def test_control_character_is_that_records_problem(
    tmp_path: Path, schedules: Schedules, fmt: str, field: str, value: object
) -> None:
    """A line break or escape sequence inside a field is a problem of its record."""
    records = [patient_record("P-1001"), patient_record("P-1002", **{field: value})]

    result = _load(tmp_path, schedules, records, fmt)

    assert len(result.problems) == 1
    assert "has a control character (" in result.problems[0].message
    assert [p.id for p in result.patients] == ["P-1001"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("written", ["9999-12-01", "0001-01-01", "1899-12-31", "2200-01-01"])
def test_surgery_date_outside_the_planners_calendar_is_a_problem(
    tmp_path: Path, schedules: Schedules, fmt: str, written: str
) -> None:
    """A surgery date before 1900 or after 2199 is its record's problem, not an overflow later."""
    records = [patient_record("P-1001"), patient_record("P-1002", surgery_date=written)]

    result = _load(tmp_path, schedules, records, fmt)

    assert _only_problem(result, "surgery_date").message == (
        f"{written} is not between 1900-01-01 and 2199-12-31"
    )
    assert [p.id for p in result.patients] == ["P-1001"]
