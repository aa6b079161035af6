"""The limits every YAML file is read under (reminders.yamlio): size, nesting, aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from reminders.errors import PatientFileError, ScheduleError
from reminders.patients import MAX_PATIENTS_BYTES
from reminders.testing import make_schedules
from reminders.validation import load_patients
from reminders.yamlio import MAX_CONFIG_BYTES, MAX_DEPTH, read_config_file

HINT = "use --config DIR"


def _read(path: Path, text: str) -> object:
    """Write ``text`` and read it back as schedules.yaml would be."""
    path.write_text(text, encoding="utf-8")
    return read_config_file(path, ScheduleError, HINT)


def test_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    """A file one byte over the limit is refused with both sizes, whatever it holds."""
    path = tmp_path / "schedules.yaml"
    with path.open("wb") as handle:
        handle.truncate(MAX_CONFIG_BYTES + 1)  # sparse: nothing to parse, only to size

    with pytest.raises(ScheduleError) as caught:
        read_config_file(path, ScheduleError, HINT)

    assert str(caught.value) == (
        f"{path}: refused: the file is too large: {MAX_CONFIG_BYTES + 1:,} bytes, "
        f"the limit is {MAX_CONFIG_BYTES:,} bytes"
    )


@pytest.mark.parametrize("name", ["patients.yaml", "patients.csv"])
def test_patients_file_over_its_limit_is_refused(tmp_path: Path, name: str) -> None:
    """A patients file over 64 MiB, YAML or CSV, is refused as a whole before it is read."""
    path = tmp_path / name
    with path.open("wb") as handle:
        handle.truncate(MAX_PATIENTS_BYTES + 1)

    with pytest.raises(PatientFileError, match="refused: the file is too large"):
        load_patients(path, make_schedules())


def test_nesting_deeper_than_the_limit_is_refused(tmp_path: Path) -> None:
    """Lists nested deeper than MAX_DEPTH are refused, naming where."""
    depth = MAX_DEPTH + 1
    with pytest.raises(ScheduleError) as caught:
        _read(tmp_path / "schedules.yaml", "[" * depth + "]" * depth)

    assert str(caught.value).endswith(
        f"refused: nested more than {MAX_DEPTH} levels deep at line 1, column {depth}"
    )


def test_nesting_at_the_limit_is_read(tmp_path: Path) -> None:
    """Lists nested exactly MAX_DEPTH deep are read as written."""
    value = _read(tmp_path / "schedules.yaml", "[" * MAX_DEPTH + "]" * MAX_DEPTH)

    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    assert depth == MAX_DEPTH


def test_aliases_growing_the_document_past_the_allowance_are_refused(tmp_path: Path) -> None:
    """Aliases that multiply a small document past the allowance are refused, with the counts."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 5)]

    with pytest.raises(ScheduleError) as caught:
        _read(tmp_path / "schedules.yaml", "\n".join(lines))

    assert "refused: its aliases (*name) expand 21 values into 123,461" in str(caught.value)


def test_shared_defaults_in_every_record_are_read(tmp_path: Path) -> None:
    """One block of defaults merged into thousands of records stays within the allowance."""
    # Each record writes 6 values and is 21 once the defaults are merged in: 210,000 in all,
    # past the fixed allowance, and within ALIAS_GROWTH times the 60,000 written.
    records = [f"  - {{<<: *defaults, id: P-{i}, first_name: Dana}}" for i in range(10_000)]
    text = (
        "defaults: &defaults {phone: '+12015550123', surgery_date: 2026-11-20, "
        "timezone: America/Chicago, language: en, status: active, channels: [sms]}\n"
        "records:\n" + "\n".join(records)
    )

    doc = _read(tmp_path / "schedules.yaml", text)

    assert isinstance(doc, dict)
    assert len(doc["records"]) == 10_000
    assert doc["records"][-1] == {
        "id": "P-9999",
        "first_name": "Dana",
        "phone": "+12015550123",
        "surgery_date": "2026-11-20",
        "timezone": "America/Chicago",
        "language": "en",
        "status": "active",
        "channels": ["sms"],
    }


def test_a_number_too_long_for_an_integer_stays_text(tmp_path: Path) -> None:
    """A run of 5,000 digits is read as text (Python would refuse it as an integer)."""
    digits = "9" * 5_000

    doc = _read(tmp_path / "schedules.yaml", f"id: {digits}\nsmall: 123456789012345678\n")

    assert doc == {"id": digits, "small": 123456789012345678}
