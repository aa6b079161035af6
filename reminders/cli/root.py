"""The ``reminders`` Typer application, its global options and what every command shares.

The global options (``--config``, ``--database``) are accepted before the command and
after it (``reminders status --database URL``): :class:`GlobalOptionsGroup` gives every
command a copy of them. Commands that only read what a sync stored open the store with
:func:`read_app`, which never creates an empty database.

Exit codes: 0 ok, 1 errors found or operation failed, 2 usage; ``tick`` adds
:data:`EXIT_STUCK`.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from reminders import logs
from reminders.app import App
from reminders.errors import ReminderError
from reminders.store import Store, migrate

#: ``tick``'s exit code when reminders are stuck after it: in doubt, retrying, or
#: expired after failed attempts (a provider outage); see ``reminders status``.
EXIT_STUCK: Final = 3
#: The distribution whose version ``--version`` prints.
DISTRIBUTION: Final = "recovery-reminders"


@dataclass
class Globals:
    """The global options of one command line, wherever they were written."""

    #: ``--config``: the configuration folder.
    config: Path
    #: ``--database``: the SQLAlchemy URL, or None for the default SQLite file.
    database: str | None


_GLOBALS: Final = frozenset(f.name for f in fields(Globals))


def _flag_without_type(param: Any) -> None:
    # Typer's help shows every flag as ``--json <bool>``, as if it took a value.
    if getattr(param, "is_flag", False) and param.metavar is None:
        param.metavar = ""


class GlobalOptionsGroup(typer.core.TyperGroup):
    """The root command: every subcommand (and sub-subcommand) also takes the global options.

    The copy given to a command reads no environment variable and has no default: it
    only overrides what the root option (which does read them) already decided.
    """

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            self._share(ctx, command)
        return command

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        for param in [*self.params, option]:
            _flag_without_type(param)
        return option

    def _share(self, ctx: Any, command: Any) -> None:
        if getattr(command, "_shares_globals", False):
            return
        command._shares_globals = True
        taken = {opt for p in command.params for opt in p.opts}
        for param in self.params:
            if param.name in _GLOBALS and not set(param.opts) & taken:
                command.params.append(_override(param))
        for param in command.params:
            _flag_without_type(param)
        help_option = command.get_help_option(ctx)
        if help_option is not None:
            _flag_without_type(help_option)
        for sub in getattr(command, "commands", {}).values():
            self._share(ctx, sub)


def _override(param: Any) -> Any:
    """A copy of a root option that, when given, replaces the root's value in ``ctx.obj``."""
    shared = copy.copy(param)
    shared.envvar = None
    shared.default = None
    shared.expose_value = False
    shared.is_eager = False

    def store(ctx: Any, _param: Any, value: Any) -> Any:
        if value is not None and isinstance(ctx.obj, Globals):
            setattr(ctx.obj, param.name, value)
        return value

    shared.callback = store
    return shared


def _version(value: bool) -> None:
    if value:
        try:
            version = metadata.version(DISTRIBUTION)
        except metadata.PackageNotFoundError:  # running from a source tree, not installed
            from reminders import __version__  # noqa: PLC0415  # only then

            version = __version__
        typer.echo(f"reminders {version}")
        raise typer.Exit


app = typer.Typer(
    name="reminders",
    help="Post-operative recovery reminders by SMS and email.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=GlobalOptionsGroup,
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


def print_json(document: Any) -> None:
    """``document`` as indented JSON on stdout, written as is: Rich's ``print_json`` takes
    about a millisecond per object, 20 s for the 20,000 reminders of an outage."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


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


#: How far ahead of this machine's clock ``--now`` may be without ``--simulate``.
FUTURE_LIMIT: Final = timedelta(days=1)


def checked_now(value: str | None, *, simulate: bool) -> datetime:
    """``--now`` for a command that sends and expires: refused (exit 1, nothing changed) when
    more than :data:`FUTURE_LIMIT` ahead of this machine's clock, unless ``simulate``.

    Everything due before that time would be sent at once and everything expiring before
    it expired for good (a sync plans the same way), so a wrong year on a real database
    would cost every patient their messages: only a test or dry-run database may jump ahead.
    """
    at = parse_now(value)
    ahead = at - datetime.now(UTC)
    if ahead > FUTURE_LIMIT and not simulate:
        hours = ahead.total_seconds() / 3600
        how_far = f"{hours:.0f} hours" if hours < 48 else f"{hours / 24:,.0f} days"
        fail(
            f"--now {utc_text(at)} is {how_far} ahead of this machine's clock: every "
            "reminder due before it would be sent now, and every one that expires before it "
            "would expire for good. On a test or dry-run database add --simulate; to catch up "
            "after an outage, leave --now out"
        )
    return at


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
SimulateOpt = Annotated[
    bool,
    typer.Option(
        "--simulate",
        help="Allow --now more than a day ahead of this machine's clock (test or dry-run "
        "databases only: what is due or expires before it is sent or expired for good).",
    ),
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
VersionOpt = Annotated[
    bool,
    typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
]


@app.callback()
def main_options(
    ctx: typer.Context,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
    version: VersionOpt = False,
) -> None:
    """Post-operative recovery reminders by SMS and email."""
    logs.configure(
        os.environ.get("REMINDERS_LOG_FORMAT"), os.environ.get("REMINDERS_LOG_LEVEL", "WARNING")
    )
    ctx.obj = Globals(config or Path("."), database)


def make_app(ctx: typer.Context, patients: Path | None = None) -> App:
    """The composition root for this command (global options + the command's --patients)."""
    options: Globals = ctx.obj
    return App(options.config, database=options.database, patients=patients)


def read_app(ctx: typer.Context) -> App:
    """The composition root of a command that reads what a sync stored (``status``, ``timeline``).

    Exits 1, creating nothing, when there is no database yet (no SQLite file, or a
    database without this service's tables): an empty one would only hide a wrong
    ``--config`` or ``--database``.
    """
    application = make_app(ctx)
    if not application.database_exists():
        _no_database(application.database_url.removeprefix("sqlite:///"))
    with errors():
        store = Store(application.database_url, migrate=False)
        try:
            empty = migrate.revisions(store.engine).current is None
        finally:
            store.close()
    if empty:
        _no_database(store.safe_url.removeprefix("sqlite:///"))
    return application


def _no_database(where: str) -> NoReturn:
    fail(f"no database at {escape(where)}; run `reminders sync` first")
