"""The ``reminders`` Typer application, its global options and what every command shares.

Exit codes: 0 ok, 1 errors found or operation failed, 2 usage.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from reminders import logs
from reminders.app import App
from reminders.errors import ReminderError

app = typer.Typer(
    name="reminders",
    help="Post-operative recovery reminders by SMS and email.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output keeps whole table cells (Rich would wrap to 80 columns).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(
    stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 160
)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` on stderr (an error unless ``code`` is 0) and exit with ``code``."""
    err.print(f"[red]error:[/] {message}" if code else message, markup=True)
    raise typer.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Turn the project's own errors into one line on stderr and exit 1, never a traceback."""
    try:
        yield
    except ReminderError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None


def parse_now(value: str | None) -> datetime:
    """``--now``: an ISO 8601 time with an offset, or the real clock."""
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time like 2026-12-01T15:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no UTC offset; add Z or +HH:MM")
    return parsed.astimezone(UTC)


def utc_text(moment: datetime | None) -> str | None:
    """``2026-12-01T15:00:00Z`` (JSON output), or None."""
    return moment.isoformat().replace("+00:00", "Z") if moment else None


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="REMINDERS_CONFIG_DIR",
        help="Folder with schedules.yaml, templates/ and patients.yaml (default: .).",
        show_default=False,
    ),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        envvar="REMINDERS_DATABASE_URL",
        help="SQLAlchemy URL (default: the SQLite file reminders.db in the config folder).",
        show_default=False,
    ),
]
NowOpt = Annotated[
    str | None, typer.Option("--now", help="Pretend it is this time (ISO 8601 with offset).")
]
PatientsOpt = Annotated[
    Path | None,
    typer.Option(
        "--patients",
        envvar="REMINDERS_PATIENTS",
        help="Patients file: .yaml, .csv or a FHIR Bundle .json (default: beside schedules.yaml).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.callback()
def main_options(
    ctx: typer.Context, config: ConfigOpt = None, database: DatabaseOpt = None
) -> None:
    """Post-operative recovery reminders by SMS and email."""
    logs.configure(
        os.environ.get("REMINDERS_LOG_FORMAT"), os.environ.get("REMINDERS_LOG_LEVEL", "WARNING")
    )
    ctx.obj = (config or Path("."), database)


def make_app(ctx: typer.Context, patients: Path | None = None) -> App:
    """The composition root for this command (global options + the command's --patients)."""
    config, database = ctx.obj
    return App(config, database=database, patients=patients)
