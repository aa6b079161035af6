"""The installed command against runaway, hostile and spreadsheet-made input (issues 10, 11).

Each case is one the issues reported; the command must answer with a message naming the
file, never a traceback, a hang or a 100,000-character text message.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.acceptance.conftest import Cli, sample_patients

#: Day 1 after P-1001's surgery (2026-11-20), 10:30 in New York.
DAY1 = "2026-11-21T15:30:00Z"


def _runaway(**fields: Any) -> dict[str, Any]:
    """A record like the reported one, with ``fields`` replaced."""
    record = {
        "id": "P-2001",
        "first_name": "Ana",
        "phone": "+12015550155",
        "email": "ana@example.com",
        "surgery_date": date(2026, 11, 20),
        "timezone": "America/New_York",
    }
    record.update(fields)
    return record


def test_runaway_first_name_is_refused_by_validate_and_sync_and_never_sent(cli: Cli) -> None:
    """A 100,000-character first name fails validate and sync for its record only; nothing is sent to it."""
    cli.write_patients([*sample_patients(), _runaway(first_name="A" * 100_000)])

    validated = cli("validate", expect=1)
    synced = cli("sync", "--now", "2026-11-20T12:00:00Z", "--json", expect=1)
    ticked = cli("tick", "--now", DAY1, "--json", expect=None)

    expected = "first_name: is 100,000 characters long; the limit is 100"
    assert expected in validated.stderr
    report = synced.json()
    assert report["problems"] == [f"{cli.patients_file}: patients[5] id=P-2001: {expected}"]
    assert sorted(report["enrolled"]) == [p["id"] for p in sample_patients()]
    assert "AAAAAAAAAA" not in ticked.stdout + ticked.stderr
    cli("timeline", "P-2001", expect=1)


def test_billion_laughs_in_one_record_is_refused_at_once(cli: Cli) -> None:
    """Nine levels of nine aliases in one record's attributes refuse the file; nothing changes."""
    lines = ["      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"      l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    cli.patients_file.write_text(
        "patients:\n"
        "  - id: P-2001\n    first_name: Ana\n    phone: '+12015550155'\n"
        "    surgery_date: 2026-11-20\n    attributes:\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )

    for command in ("validate", "sync"):
        result = cli(command, expect=1)
        assert f"{cli.patients_file}: refused: its aliases (*name) expand " in result.stderr

    cli("timeline", "P-2001", expect=1)


def test_european_excel_export_is_enrolled(cli: Cli) -> None:
    """A ``;``-separated "CSV UTF-8" with spreadsheet headers (``First Name``) enrols its patients."""
    export = cli.folder / "export.csv"
    export.write_text(
        "\ufeffID;First Name;Last Name;Phone;E-mail;Surgery Date;Time Zone;Language\r\n"
        "P-2001;José;Díaz;+12015550155;jose@example.com;2026-11-20;Europe/Madrid;es\r\n"
        "P-2002;Ana;Ruiz;+12015550156;;2026-11-20;Europe/Madrid;es\r\n",
        encoding="utf-8",
    )

    result = cli("sync", "--now", "2026-11-20T12:00:00Z", "--patients", str(export), "--json")

    assert sorted(result.json()["enrolled"]) == ["P-2001", "P-2002"]
    rows = cli("timeline", "P-2001", "--json").json()
    assert {row["channel"] for row in rows} == {"sms", "email"}


def test_windows_1252_export_is_refused_with_how_to_save_it(cli: Cli) -> None:
    """Excel's plain "CSV" (Windows-1252) is refused by validate and sync with the way to re-save it."""
    export = cli.folder / "export.csv"
    export.write_bytes(
        "id,first_name,phone,surgery_date\nP-2001,José,+12015550155,2026-11-20\n".encode("cp1252")
    )

    for command in ("validate", "sync"):
        result = cli(command, "--patients", str(export), expect=1)
        assert f"{export}: row 2: is not UTF-8 text" in result.stderr
        assert "CSV UTF-8" in result.stderr


def test_template_computing_too_much_fails_validate_naming_it(cli: Cli) -> None:
    """``{{ range(10**9)|list|length }}`` in a template fails validate with its file, at once."""
    template = cli.folder / "templates" / "en" / "brace-removal.sms.j2"
    template.write_text("{{ range(10**9)|list|length }}", encoding="utf-8")

    result = cli("validate", expect=1)

    assert f"{template}: does not render: range() of 1,000,000,000 items" in result.stderr
