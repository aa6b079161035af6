"""Patients files exported from spreadsheets (reminders.csvio through reminders.patients).

Separators, header names, encodings: what Excel, LibreOffice and Numbers write.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from reminders.csvio import read_rows
from reminders.errors import PatientFileError
from reminders.models import Schedules
from reminders.patients import PatientFile, records_with_problems
from reminders.testing import make_schedules
from reminders.validation import load_patients

HEADER_RECORD = "row 1 (the header)"


@pytest.fixture
def schedules() -> Schedules:
    """The helper's valid schedules: default protocol demo-repair, clinic in New York."""
    return make_schedules()


def _load(tmp_path: Path, schedules: Schedules, content: str | bytes) -> PatientFile:
    """Write ``content`` as ``patients.csv`` (text as UTF-8) and read it back."""
    path = tmp_path / "patients.csv"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return load_patients(path, schedules)


def _refusal(tmp_path: Path, schedules: Schedules, content: str | bytes) -> PatientFileError:
    """The PatientFileError raised for ``content``."""
    with pytest.raises(PatientFileError) as caught:
        _load(tmp_path, schedules, content)
    return caught.value


COMMAS = (
    "id,first_name,phone,email,surgery_date,channels,attributes\n"
    'P-1001,José,+12015550123,jose@example.com,2026-11-20,"sms;email","goal=sport; repair=acute"\n'
    "P-1002,Sam,(201) 555-0100,,2026-11-21,,\n"
)


@pytest.mark.parametrize(
    "separator",
    [pytest.param(";", id="semicolons"), pytest.param("\t", id="tabs")],
)
def test_other_separators_read_like_commas(
    tmp_path: Path, schedules: Schedules, separator: str
) -> None:
    """A file separated by ``;`` (European Excel) or tabs gives the same patients as commas."""
    expected = _load(tmp_path, schedules, COMMAS).patients
    text = (
        f"id{separator}first_name{separator}phone{separator}email{separator}surgery_date"
        f"{separator}channels{separator}attributes\n"
        f"P-1001{separator}José{separator}+12015550123{separator}jose@example.com{separator}"
        f'2026-11-20{separator}"sms;email"{separator}"goal=sport; repair=acute"\n'
        f"P-1002{separator}Sam{separator}(201) 555-0100{separator}{separator}2026-11-21"
        f"{separator}{separator}\n"
    )

    result = _load(tmp_path, schedules, text)

    assert result.problems == []
    assert result.patients == expected
    assert [p.channels for p in result.patients] == [("sms", "email"), ("sms",)]


def test_excel_semicolon_export_with_byte_order_mark(tmp_path: Path, schedules: Schedules) -> None:
    """Excel's "CSV UTF-8" in a comma-decimal locale: BOM, ``;``, CRLF, quoted cells."""
    text = (
        "\ufeffID;First Name;Surgery Date;Phone;Channels\r\n"
        'P-1001;"Reyes; Dana";2026-11-20;+12015550123;sms\r\n'
    )

    result = _load(tmp_path, schedules, text)

    assert result.problems == []
    assert [(p.id, p.first_name, p.channels) for p in result.patients] == [
        ("P-1001", "Reyes; Dana", ("sms",))
    ]


def test_header_names_ignore_case_spaces_dashes_and_underscores(
    tmp_path: Path, schedules: Schedules
) -> None:
    """``First Name``, ``SURGERY-DATE``, ``E-mail`` and ``Time Zone`` name the known columns."""
    text = (
        " ID ,First Name,LAST NAME,Phone,E-mail,SURGERY-DATE,Time Zone,language,Status\n"
        "P-1001,Dana,Reyes,+12015550123,dana@example.com,2026-11-20,America/Chicago,es,paused\n"
    )

    result = _load(tmp_path, schedules, text)

    assert result.problems == []
    dana = result.patients[0]
    assert (dana.first_name, dana.last_name, dana.email, dana.timezone) == (
        "Dana",
        "Reyes",
        "dana@example.com",
        "America/Chicago",
    )
    assert (dana.language, dana.status) == ("es", "paused")


def test_unknown_column_is_one_error_for_the_file(tmp_path: Path, schedules: Schedules) -> None:
    """An unknown column refuses the file once, naming it, however many rows have a value in it."""
    rows = "".join(f"P-{i},Dana,+12015550123,2026-11-20,call after 5\n" for i in range(50))
    text = "id,first_name,phone,surgery_date,Notes\n" + rows

    error = _refusal(tmp_path, schedules, text)

    assert error.record == HEADER_RECORD
    assert error.detail.startswith("unknown column 'Notes'. The first row must name the columns")
    assert "(capitals and spaces do not matter)" in error.detail


def test_misspelt_column_refuses_the_file_instead_of_losing_its_values(
    tmp_path: Path, schedules: Schedules
) -> None:
    """A misspelt ``status`` column is not ignored: withdrawals in it must not be lost."""
    text = (
        "id,first_name,phone,surgery_date,statut\nP-1001,Dana,+12015550123,2026-11-20,withdrawn\n"
    )

    error = _refusal(tmp_path, schedules, text)

    assert error.detail.startswith("unknown column 'statut'")


def test_missing_and_repeated_columns_are_one_error(tmp_path: Path, schedules: Schedules) -> None:
    """A missing required column and a column given twice are reported together, once."""
    text = "id,Phone,phone,surgery_date\nP-1001,+12015550123,+12015550123,2026-11-20\n"

    error = _refusal(tmp_path, schedules, text)

    assert error.record == HEADER_RECORD
    assert error.detail.startswith(
        "column 'phone' appears twice; missing column 'first_name'. The first row must name"
    )


def test_header_that_is_a_patient_row_is_refused(tmp_path: Path, schedules: Schedules) -> None:
    """A file exported without its header row is refused: its first row names no column."""
    text = "P-1001,Dana,+12015550123,2026-11-20\nP-1002,Sam,+12015550100,2026-11-21\n"

    error = _refusal(tmp_path, schedules, text)

    assert error.detail.startswith(
        "unknown column 'P-1001', 'Dana', '+12015550123', '2026-11-20'; "
        "missing column 'id', 'first_name', 'surgery_date'."
    )


def test_windows_1252_file_says_how_to_save_as_csv_utf8(
    tmp_path: Path, schedules: Schedules
) -> None:
    """Excel's plain "CSV" (Windows-1252) is refused at its first bad row, saying how to re-save."""
    text = (
        "id,first_name,phone,surgery_date\n"
        "P-1001,Dana,+12015550123,2026-11-20\n"
        "P-1002,José,+12015550100,2026-11-20\n"
    )

    error = _refusal(tmp_path, schedules, text.encode("cp1252"))

    assert error.record == "row 3"
    assert error.detail.startswith('is not UTF-8 text (byte 0xe9; Excel\'s plain "CSV" is ')
    assert 'File > Save As > "CSV UTF-8 (Comma delimited) (*.csv)"' in error.detail


def test_utf16_file_says_how_to_save_as_csv_utf8(tmp_path: Path, schedules: Schedules) -> None:
    """Excel's "Unicode Text" (UTF-16) is refused, saying how to save as CSV UTF-8."""
    text = "id\tfirst_name\tsurgery_date\nP-1001\tDana\t2026-11-20\n"

    error = _refusal(tmp_path, schedules, text.encode("utf-16"))

    assert error.detail.startswith('is saved as UTF-16 (Excel\'s "Unicode Text"): save it again')
    assert '"CSV UTF-8 (Comma delimited) (*.csv)"' in error.detail


def test_cell_beyond_the_header_is_that_rows_problem(tmp_path: Path, schedules: Schedules) -> None:
    """A value in a column the header does not name is a problem of its row only."""
    text = (
        "id,first_name,phone,surgery_date\n"
        "P-1001,Dana,+12015550123,2026-11-20\n"
        "P-1002,Sam,+12015550100,2026-11-20,stray\n"
    )

    result = _load(tmp_path, schedules, text)

    assert [(p.record, p.field) for p in result.problems] == [("row 3 id=P-1002", "column 5")]
    assert [p.id for p in result.patients] == ["P-1001"]


def test_problems_and_rejected_records_are_counted_apart(
    tmp_path: Path, schedules: Schedules
) -> None:
    """Two mistakes in one row and one in another are 3 problems in 2 records."""
    text = (
        "id,first_name,phone,surgery_date,language\n"
        "P-1001,Dana,+12015550123,2026-11-20,en\n"
        "P-1002,Sam,555-01,someday,en\n"
        "P-1003,Alex,+12015550199,2026-11-20,fr\n"
    )

    result = _load(tmp_path, schedules, text)

    assert (len(result.patients), len(result.problems), result.rejected) == (1, 3, 2)
    assert records_with_problems(result.problems) == 2


def test_a_csv_that_never_ends_a_line_is_refused_after_reading_at_most_its_limit(
    tmp_path: Path,
) -> None:
    """A patients CSV that is a pipe pouring out one endless line is refused once its size limit is read, not read whole into memory."""
    limit = 1 << 20
    fifo = tmp_path / "export.csv"
    os.mkfifo(fifo)
    written = 0

    def pour() -> None:
        """Write 20 MiB (a header, then one line) to every reader that opens the pipe."""
        nonlocal written
        give_up = time.monotonic() + 10
        while written < 20 * limit and time.monotonic() < give_up:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader has the pipe open yet
                time.sleep(0.01)
                continue
            os.set_blocking(fd, True)
            try:
                with os.fdopen(fd, "wb") as pipe:
                    pipe.write(b"id,first_name,surgery_date\nP-1,")
                    while written < 20 * limit:
                        pipe.write(b"A" * 65536)
                        written += 65536
            except BrokenPipeError:
                give_up = time.monotonic() + 1  # a reader that opens it again soon gets the rest

    writer = threading.Thread(target=pour, daemon=True)
    writer.start()
    rows = read_rows(fifo, ("id", "first_name", "surgery_date"), ("id",), PatientFileError, limit)
    with pytest.raises(PatientFileError, match=r"refused: .*over the limit of 1,048,576 bytes"):
        list(rows)
    writer.join(timeout=60)
    assert not writer.is_alive()
    assert written <= limit + (1 << 18), f"{written:,} bytes read for a limit of {limit:,}"
