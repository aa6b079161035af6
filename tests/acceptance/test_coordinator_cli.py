"""Acceptance: the command line as a new coordinator types it (issue 11, "Coordinators").

Global options after the command, ``--version``, flags shown as flags, read-only
commands that never create an empty database, ``preview`` without ``--protocol``,
``validate --json`` and ``preview --json``, the withdraw guard naming the patients.
Every test runs the installed command as a subprocess (:mod:`reminders.testing.runner`).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from reminders.testing import runner

from .conftest import Cli, sample_patients

#: Before any sample patient's first reminder.
BEFORE_ANY = "2026-11-15T12:00:00Z"


def _typed(*args: str, cwd: Path | None = None, expect: int = 0) -> runner.Result:
    """``reminders *args`` exactly as typed; checks the exit code and that no traceback shows."""
    result = runner.run_as_typed(*args, cwd=cwd)
    assert "Traceback" not in result.stdout + result.stderr, str(result)
    assert result.code == expect, str(result)
    return result


# -- global options, --version, flags ---------------------------------------------------------


def test_global_options_work_after_the_command(cli: Cli, tmp_path: Path) -> None:
    """`reminders sync --config DIR --database URL` uses that folder and that database, as before the command."""
    elsewhere = tmp_path / "elsewhere.db"
    url = f"sqlite:///{elsewhere}"

    _typed("sync", "--now", BEFORE_ANY, "--config", str(cli.folder), "--database", url)
    status = _typed("status", "--json", "--database", url, cwd=tmp_path).json()
    nested = _typed("db", "current", "--database", url, cwd=tmp_path)

    assert elsewhere.exists()
    assert not (cli.folder / "reminders.db").exists()
    assert status["patients"] == {"active": 5}
    assert "(head)" in nested.stdout


def test_an_option_after_the_command_overrides_the_one_before(cli: Cli, tmp_path: Path) -> None:
    """`reminders --database A status --database B` reads B: the later option wins."""
    cli("sync", "--now", BEFORE_ANY)
    empty = tmp_path / "never-created.db"

    result = _typed(
        "--database", f"sqlite:///{empty}", "status", "--database", cli.database, "--json"
    )

    assert result.json()["patients"] == {"active": 5}
    assert not empty.exists()


@pytest.mark.parametrize("command", [(), ("status",), ("tick",), ("db", "current")])
def test_flags_show_as_flags_in_help(command: tuple[str, ...]) -> None:
    """`--json`, `--force`, `--version`, `--help` are listed without a `<bool>` value in help."""
    result = _typed(*command, "--help")

    flags = [
        line for line in result.stdout.splitlines() if re.search(r"--(json|help|version)\b", line)
    ]
    assert flags, str(result)
    assert not [line for line in flags if "<bool>" in line], str(result)


def test_version_is_the_installed_package_version() -> None:
    """`reminders --version` prints the version from the package metadata and exits 0."""
    result = _typed("--version")

    assert result.stdout.strip() == f"reminders {metadata.version('recovery-reminders')}"


# -- read-only commands never create a database -----------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "--json"),
        ("timeline", "P-1001"),
        ("resend", "P-1001", "crutches-toe-touch", "--by", "Kim Lee", "--reason", "lost it"),
        ("calendar", "P-1001"),
        ("users", "list"),
        ("users", "disable", "kim@example.com"),
    ],
    ids=["status", "status-json", "timeline", "resend", "calendar", "users-list", "users-disable"],
)
def test_read_commands_without_a_database_say_so_and_create_none(
    cli: Cli, args: tuple[str, ...]
) -> None:
    """In a folder never synced, the command exits 1 saying there is no database and to run sync; no file appears."""
    before = sorted(p.name for p in cli.folder.iterdir())

    result = _typed(*args, cwd=cli.folder, expect=1)

    assert f"no database at {cli.folder / 'reminders.db'}" in result.stderr, str(result)
    assert "run `reminders sync` first" in result.stderr, str(result)
    assert sorted(p.name for p in cli.folder.iterdir()) == before


def test_a_database_file_without_tables_is_no_database_either(cli: Cli) -> None:
    """An empty file where the database should be: `status` says there is no database and creates no table."""
    path = cli.folder / "reminders.db"
    path.write_bytes(b"")

    result = _typed("status", cwd=cli.folder, expect=1)

    assert "run `reminders sync` first" in result.stderr, str(result)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_read_commands_work_once_synced(cli: Cli) -> None:
    """After `sync` in the folder, `status` and `timeline` read it with no global option at all."""
    _typed("sync", "--now", BEFORE_ANY, cwd=cli.folder)

    status = _typed("status", "--json", cwd=cli.folder).json()
    timeline = _typed("timeline", sample_patients()[0]["id"], "--json", cwd=cli.folder).json()

    assert status["patients"] == {"active": 5}
    assert timeline


# -- preview ----------------------------------------------------------------------------------


def test_preview_finds_a_milestone_of_another_protocol_without_protocol(cli: Cli) -> None:
    """`preview nonop-start` renders the non-operative protocol's milestone, though the default protocol is another."""
    result = cli("preview", "nonop-start", "--channel", "sms")

    assert "proximal-hamstring-nonoperative / nonop-start / sms" in result.stdout, str(result)


def test_preview_of_a_milestone_in_two_protocols_lists_them(cli: Cli) -> None:
    """A milestone id in both protocols, without --protocol, exits 2 naming both protocols and --protocol."""
    path = cli.folder / "schedules.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("- id: nonop-check-in", "- id: exercise-check-in"),
        encoding="utf-8",
    )

    ambiguous = cli("preview", "exercise-check-in", expect=2)
    chosen = cli(
        "preview", "exercise-check-in", "--protocol", "proximal-hamstring-nonoperative", "--json"
    )

    message = ambiguous.stderr
    assert "proximal-hamstring-repair" in message, str(ambiguous)
    assert "proximal-hamstring-nonoperative" in message, str(ambiguous)
    assert "--protocol" in message, str(ambiguous)
    assert {m["protocol"] for m in chosen.json()} == {"proximal-hamstring-nonoperative"}


def test_preview_with_an_unknown_protocol_names_the_known_ones(cli: Cli) -> None:
    """`preview brace-removal --protocol nope` exits 2 listing the protocols instead of searching them all."""
    result = cli("preview", "brace-removal", "--protocol", "nope", expect=2)

    assert "no protocol 'nope'" in result.stderr, str(result)
    assert "proximal-hamstring-repair" in result.stderr, str(result)


def test_preview_json_gives_each_channels_message(cli: Cli) -> None:
    """`preview brace-removal --patient P-1001 --json`: one object per channel with text, SMS units and email subject."""
    rows = cli("preview", "brace-removal", "--patient", "P-1001", "--json").json()

    by_channel = {r["channel"]: r for r in rows}
    assert set(by_channel) == {"sms", "email"}
    for row in rows:
        assert (row["protocol"], row["milestone"], row["patient_id"], row["language"]) == (
            "proximal-hamstring-repair",
            "brace-removal",
            "P-1001",
            "en",
        )
        assert "Dana" in row["text"]
    sms = by_channel["sms"]["sms"]
    assert sms["encoding"] == "GSM-7"
    assert 1 <= sms["segments"] <= 2
    assert sms["units"] > 0
    assert by_channel["email"]["subject"]


# -- validate ---------------------------------------------------------------------------------


def test_validate_json_of_the_shipped_configuration(cli: Cli) -> None:
    """`validate --json` on the shipped files: ok, no problems, 5 patients, both protocols, every SMS template counted."""
    result = cli("validate", "--json").json()

    assert result["ok"] is True
    assert (result["problems"], result["problem_count"], result["records_with_problems"]) == (
        [],
        0,
        0,
    )
    assert result["patients"] == 5
    assert {p["id"] for p in result["protocols"]} == {
        "proximal-hamstring-repair",
        "proximal-hamstring-nonoperative",
    }
    assert result["sms_templates"]
    assert all(t["segments"] <= 2 for t in result["sms_templates"])


def _two_bad_records(cli: Cli) -> None:
    """Dana with two mistakes, Luis with one; the other three are fine."""
    patients = sample_patients()
    patients[0]["phone"] = "555-01"
    patients[0]["surgery_date"] = "someday"
    patients[1]["language"] = "fr"
    cli.write_patients(patients)


def test_validate_counts_problems_and_patients_apart(cli: Cli) -> None:
    """Three problems in two records: validate says 3 problems, 2 patient records, 3 ready; --json the same."""
    _two_bad_records(cli)

    text = cli("validate", expect=1)
    result = cli("validate", "--json", expect=1).json()

    assert "3 problems found; 2 patient records with problems" in text.stderr, str(text)
    assert "3 patients ready" in text.stderr, str(text)
    assert result["ok"] is False
    assert (result["problem_count"], result["records_with_problems"], result["patients"]) == (
        3,
        2,
        3,
    )


def test_sync_counts_problems_and_patients_apart(cli: Cli) -> None:
    """Three problems in two records: sync's line says `2 with problems (3 problems)`; --json counts both."""
    _two_bad_records(cli)

    text = cli("sync", "--now", BEFORE_ANY, expect=1)
    patients = sample_patients()
    patients[2]["language"] = "fr"
    cli.write_patients(patients)
    report = cli("sync", "--now", BEFORE_ANY, "--json", expect=1).json()

    assert "3 enrolled" in text.stdout, str(text)
    assert "2 with problems (3 problems)" in text.stdout, str(text)
    assert (len(report["problems"]), report["records_with_problems"]) == (1, 1)


# -- the withdraw guard -----------------------------------------------------------------------


def test_the_withdraw_guard_names_the_patients_it_would_withdraw(cli: Cli) -> None:
    """Removing 2 of 5 patients: the refusal names both ids and the count, and changes nothing."""
    cli("sync", "--now", BEFORE_ANY)
    cli.write_patients(sample_patients()[:3])

    refused = cli("sync", "--now", BEFORE_ANY, expect=1)

    assert "would withdraw 2 of 5 active patients" in refused.stderr, str(refused)
    assert "P-1004, P-1005;" in refused.stderr, str(refused)
    assert cli("status", "--json").json()["patients"] == {"active": 5}


def test_sync_json_prints_the_refusal_as_json_with_every_id(make_cli: Any) -> None:
    """Emptying a file of 25 patients: `sync --json` exits 1 with JSON naming all 25; the message names 20 and 5 more."""
    cli: Cli = make_cli("many")
    base = sample_patients()[0]
    cli.write_patients([{**base, "id": f"P-{n:04d}"} for n in range(25)])
    cli("sync", "--now", BEFORE_ANY)
    cli.write_patients([])

    result = cli("sync", "--now", BEFORE_ANY, "--json", expect=1)
    refusal = result.json()

    ids = [f"P-{n:04d}" for n in range(25)]
    assert refusal["refused"] is True
    assert (refusal["enrolled"], refusal["withdrawing"], refusal["patient_ids"]) == (25, 25, ids)
    assert ", ".join(ids[:20]) + " and 5 more" in refusal["error"]
    assert "--force" in refusal["error"]
    assert cli("status", "--json").json()["patients"] == {"active": 25}
