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
    ],
    ids=["status", "status-json", "timeline", "resend"],
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
