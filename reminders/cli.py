"""The ``reminders`` command line (SPEC section 5).

Exit codes: 0 ok, 1 errors found or operation failed, 2 usage.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reminders import logs
from reminders.config import load_schedules
from reminders.dispatch import Dispatcher, TickReport
from reminders.errors import ReminderError, UnknownPatient
from reminders.models import CHANNELS, Schedules
from reminders.patients import load_patients, patients_path
from reminders.settings import Settings, build_dispatcher
from reminders.sms import count_segments
from reminders.store import Store, TimelineEntry, default_database_url
from reminders.sync import SyncReport, sync_patients
from reminders.templates import TEMPLATES_DIR, Templates, check_templates, message_context

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


@dataclass
class Context:
    """Global options shared by every command."""

    config_dir: Path
    database: str | None

    def schedules(self) -> Schedules:
        return load_schedules(self.config_dir)

    def templates(self) -> Templates:
        return Templates(self.config_dir / TEMPLATES_DIR)

    def checked_config(self) -> tuple[Schedules, Templates]:
        """schedules.yaml and every template, or an error: a bad config changes nothing."""
        schedules = self.schedules()
        templates = self.templates()
        errors, _ = check_templates(schedules, templates)
        if errors:
            raise errors[0]
        return schedules, templates

    def store(self) -> Store:
        return Store(self.database or default_database_url(self.config_dir))


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/] {message}" if code else message, markup=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn the project's own errors into one line on stderr and exit 1, never a traceback."""
    try:
        yield
    except ReminderError as exc:
        err.print(f"[red]error:[/] {_escape(str(exc))}")
        raise typer.Exit(1) from None


def _escape(text: str) -> str:
    return escape(text)


def _now(value: str | None) -> datetime:
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
        help="Patients file, .yaml or .csv (default: beside schedules.yaml).",
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
    ctx.obj = Context(config_dir=config or Path("."), database=database)


def _ctx(ctx: typer.Context) -> Context:
    obj = ctx.obj
    assert isinstance(obj, Context)  # noqa: S101  # set by the callback above
    return obj


# -- validate ----------------------------------------------------------------------------


@app.command()
def validate(ctx: typer.Context, patients: PatientsOpt = None) -> None:
    """Check schedules.yaml, every template (every language and channel) and the patients file."""
    c = _ctx(ctx)
    problems: list[str] = []
    try:
        schedules = c.schedules()
    except ReminderError as exc:
        _fail(_escape(str(exc)))
    templates = c.templates()
    errors, checks = check_templates(schedules, templates)
    problems.extend(str(e) for e in errors)
    path = patients_path(c.config_dir, patients)
    patient_count = 0
    try:
        loaded = load_patients(path, schedules)
    except ReminderError as exc:
        problems.append(str(exc))
    else:
        problems.extend(str(p) for p in loaded.problems)
        patient_count = len(loaded.patients)
        problems.extend(_long_sms_for_patients(schedules, templates, loaded.patients))
    table = Table(title="SMS templates (rendered with a sample 11-letter first name)")
    for column in ("language", "template", "encoding", "units", "segments"):
        table.add_column(column, justify="right" if column in ("units", "segments") else "left")
    for check in checks:
        style = "red" if check.count.segments > 2 else ""
        table.add_row(
            check.language,
            check.template,
            check.count.encoding,
            str(check.count.units),
            str(check.count.segments),
            style=style,
        )
    out.print(table)
    if problems:
        for line in problems:
            err.print(_escape(line))
        err.print(f"[red]{len(problems)} problem(s) found[/]")
        raise typer.Exit(1)
    protocols = ", ".join(
        f"{p.id} v{p.version} ({len(p.milestones)} milestones)"
        for p in schedules.protocols.values()
    )
    out.print(
        f"[green]ok[/]: {protocols}; {len(checks)} SMS templates; "
        f"{patient_count} patients in {path}"
    )


def _long_sms_for_patients(
    schedules: Schedules, templates: Templates, patients: list[Any]
) -> Iterator[str]:
    """Every patient whose own name pushes an SMS past 2 segments.

    A name with a character outside GSM-7 (``Zoë``) switches the whole SMS to UCS-2.
    """
    seen: set[tuple[str, str, str]] = set()
    for patient in patients:
        if "sms" not in patient.channels:
            continue
        for milestone in schedules.protocols[patient.protocol].milestones:
            key = (patient.first_name, patient.language, milestone.template)
            if "sms" not in milestone.channels or key in seen:
                continue
            seen.add(key)
            try:
                text = templates.render(
                    "sms",
                    patient.language,
                    milestone.template,
                    message_context(
                        clinic=schedules.clinic,
                        first_name=patient.first_name,
                        last_name=patient.last_name,
                        milestone=milestone.id,
                        occurrence=1,
                        surgery_date=patient.surgery_date,
                        send_date=patient.surgery_date,
                    ),
                ).text
            except ReminderError:
                continue  # already reported by the template check
            count = count_segments(text)
            if count.segments > 2:
                yield (
                    f"patient id={patient.id}: first_name: the {milestone.template} SMS "
                    f"renders to {count.segments} segments ({count.encoding}) with this name"
                )


# -- sync and tick -------------------------------------------------------------------------


def _run_sync(
    c: Context,
    store: Store,
    schedules: Schedules,
    *,
    patients: Path | None,
    now: datetime,
    force: bool,
) -> SyncReport:
    path = patients_path(c.config_dir, patients)
    show = err.is_terminal and not os.environ.get("CI")
    with Progress(
        TextColumn("planning"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not show,
    ) as bar:
        task = bar.add_task("reminders", total=None)

        def progress(_stage: str, advance: int, total: int) -> None:
            bar.update(task, advance=advance, total=total)

        return sync_patients(store, schedules, path, now, force=force, progress=progress)


def _print_sync(report: SyncReport) -> None:
    for problem in report.problems:
        err.print(f"[yellow]skipped[/] {_escape(str(problem))}")
    parts = [
        f"{len(report.enrolled)} enrolled",
        f"{len(report.updated)} updated",
        f"{len(report.paused)} paused",
        f"{len(report.withdrawn)} withdrawn",
        f"{report.unchanged} unchanged",
        f"{len(report.problems)} with problems",
    ]
    reminders = ", ".join(f"{n} {k}" for k, n in sorted(report.reminders.items()) if n)
    out.print("sync: " + ", ".join(parts) + (f"; reminders: {reminders}" if reminders else ""))
    for label, ids in (
        ("enrolled", report.enrolled),
        ("updated", report.updated),
        ("paused", report.paused),
        ("withdrawn", report.withdrawn),
    ):
        if ids and len(ids) <= 20:
            out.print(f"  {label}: {', '.join(ids)}")


@app.command()
def sync(
    ctx: typer.Context,
    now: NowOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Allow withdrawing more than 20% of active patients.")
    ] = False,
    patients: PatientsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply the patients file: enrol, update, re-plan, withdraw; print what changed."""
    c = _ctx(ctx)
    at = _now(now)
    with _errors():
        schedules, _ = c.checked_config()
        store = c.store()
        report = _run_sync(c, store, schedules, patients=patients, now=at, force=force)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
    else:
        _print_sync(report)
    if report.problems:
        raise typer.Exit(1)


def _dispatcher(
    store: Store, schedules: Schedules, templates: Templates, announce: bool
) -> Dispatcher:
    # With --json, stdout carries only the JSON document; the console dry run goes to stderr.
    dispatcher, notes = build_dispatcher(
        store,
        schedules,
        templates,
        Settings.from_env(),
        owner=f"{socket.gethostname()}:{os.getpid()}",
        console=out if announce else err,
    )
    if announce:
        for note in notes:
            err.print(f"[dim]{_escape(note)}[/]")
    return dispatcher


@app.command()
def tick(
    ctx: typer.Context, now: NowOpt = None, patients: PatientsOpt = None, as_json: JsonOpt = False
) -> None:
    """Sync, then deliver everything due at --now (default: now), wait for the outcome, exit."""
    c = _ctx(ctx)
    at = _now(now)
    with _errors():
        schedules, templates = c.checked_config()
        store = c.store()
        report = _run_sync(c, store, schedules, patients=patients, now=at, force=False)
        if not as_json:
            _print_sync(report)
        dispatcher = _dispatcher(store, schedules, templates, announce=not as_json)
        result: TickReport = dispatcher.tick(at)
    counts = result.as_dict()
    if as_json:
        out.print_json(json.dumps({**counts, "problems": [str(p) for p in report.problems]}))
    else:
        out.print("tick: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    if report.problems or counts["failed"]:
        raise typer.Exit(1)


# -- reading -------------------------------------------------------------------------------


def _entry_json(e: TimelineEntry, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "patient_id": e.patient_id,
        "protocol": e.protocol,
        "milestone": e.milestone,
        "occurrence": e.occurrence,
        "channel": e.channel,
        "due_at": e.due_at.isoformat().replace("+00:00", "Z"),
        "due_local": e.due_at.astimezone(zone).isoformat(),
        "expires_at": e.expires_at.isoformat().replace("+00:00", "Z"),
        "status": e.status,
        "attempts": e.attempts,
        "provider_id": e.provider_id,
        "error_code": e.error_code,
        "error": e.error,
        "sent_at": e.sent_at.isoformat().replace("+00:00", "Z") if e.sent_at else None,
    }


_STATUS_STYLE = {
    "planned": "cyan",
    "sending": "yellow",
    "sent": "green",
    "delivered": "green",
    "failed": "red",
    "cancelled": "dim",
    "expired": "dim",
    "suppressed": "magenta",
}


@app.command()
def timeline(
    ctx: typer.Context,
    patient: Annotated[str, typer.Argument(help="Patient id.")],
    as_json: JsonOpt = False,
    render: Annotated[bool, typer.Option("--render", help="Show each message's text.")] = False,
) -> None:
    """Every reminder of one patient: milestone, channel, local and UTC time, status, attempts."""
    c = _ctx(ctx)
    with _errors():
        store = c.store()
        with store.read() as tx:
            enrollment = tx.enrollment(patient)
            entries = tx.timeline(patient)
        zone = ZoneInfo(enrollment.timezone)
        if as_json:
            rows = [_entry_json(e, zone) for e in entries]
            if render:
                schedules, templates = c.checked_config()
                for row, e in zip(rows, entries, strict=True):
                    row["message"] = _render_dict(schedules, templates, enrollment, e)
            out.print_json(json.dumps(rows))
            return
        table = Table(
            title=f"{enrollment.patient_id} {enrollment.first_name} {enrollment.last_name}: "
            f"{enrollment.protocol}, surgery {enrollment.surgery_date}, {enrollment.timezone}, "
            f"{enrollment.status}"
        )
        for column in (
            "milestone",
            "#",
            "channel",
            f"local ({enrollment.timezone})",
            "UTC",
            "status",
            "attempts",
            "detail",
        ):
            table.add_column(column)
        for e in entries:
            detail = e.error_code or e.error or e.provider_id or ""
            table.add_row(
                e.milestone,
                str(e.occurrence),
                e.channel,
                e.due_at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z"),
                e.due_at.strftime("%Y-%m-%d %H:%M"),
                f"[{_STATUS_STYLE.get(e.status, '')}]{e.status}[/]",
                str(e.attempts),
                _escape(detail),
            )
        out.print(table)
        if render:
            schedules, templates = c.checked_config()
            for e in entries:
                message = _render_dict(schedules, templates, enrollment, e)
                out.rule(f"{e.milestone} #{e.occurrence} {e.channel}")
                if message.get("subject"):
                    out.print(f"Subject: {_escape(message['subject'])}")
                out.print(_escape(message["text"]))


def _render_dict(
    schedules: Schedules, templates: Templates, enrollment: Any, e: TimelineEntry
) -> dict[str, str]:
    zone = ZoneInfo(enrollment.timezone)
    rendered = templates.render(
        e.channel,
        enrollment.language,
        e.template,
        message_context(
            clinic=schedules.clinic,
            first_name=enrollment.first_name,
            last_name=enrollment.last_name,
            milestone=e.milestone,
            occurrence=e.occurrence,
            surgery_date=enrollment.surgery_date,
            send_date=e.due_at.astimezone(zone).date(),
        ),
    )
    result = {"text": rendered.text}
    if e.channel == "email":
        result["subject"] = rendered.subject
    return result


@app.command()
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Counts of patients and reminders by status, the next due time, what needs a coordinator."""
    c = _ctx(ctx)
    with _errors():
        store = c.store()
        with store.read() as tx:
            summary = tx.summary()
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "patients": summary.patients,
                    "reminders": summary.reminders,
                    "next_due": summary.next_due.isoformat().replace("+00:00", "Z")
                    if summary.next_due
                    else None,
                    "opted_out": summary.opted_out,
                    "failures": [_entry_json(f, ZoneInfo("UTC")) for f in summary.failures],
                }
            )
        )
        return
    table = Table(title="Patients and reminders")
    table.add_column("what")
    table.add_column("status")
    table.add_column("count", justify="right")
    for state, n in sorted(summary.patients.items()):
        table.add_row("patients", state, str(n))
    for state, n in sorted(summary.reminders.items()):
        table.add_row("reminders", f"[{_STATUS_STYLE.get(state, '')}]{state}[/]", str(n))
    for channel, n in sorted(summary.opted_out.items()):
        table.add_row("opted out", channel, str(n))
    out.print(table)
    out.print(
        f"next due: {summary.next_due:%Y-%m-%d %H:%M UTC}"
        if summary.next_due
        else "next due: nothing planned"
    )
    if summary.failures:
        failures = Table(title="Needs a coordinator (recent failures)")
        for column in ("patient", "milestone", "channel", "code", "error"):
            failures.add_column(column)
        for f in summary.failures:
            failures.add_row(
                f.patient_id,
                f"{f.milestone} #{f.occurrence}",
                f.channel,
                f.error_code or "",
                _escape(f.error or ""),
            )
        out.print(failures)


@app.command()
def preview(
    ctx: typer.Context,
    milestone: Annotated[str, typer.Argument(help="Milestone id, e.g. brace-removal.")],
    patient: Annotated[
        str | None, typer.Option("--patient", help="Render for this patient.")
    ] = None,
    language: Annotated[str | None, typer.Option("--language", help="Template language.")] = None,
    channel: Annotated[
        str | None, typer.Option("--channel", help="sms or email (default: both).")
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option("--protocol", help="Protocol (default: the patient's or the default)."),
    ] = None,
    patients: PatientsOpt = None,
) -> None:
    """Show the rendered message of a milestone, for a patient or with sample data."""
    c = _ctx(ctx)
    with _errors():
        schedules = c.schedules()
        templates = c.templates()
        person = None
        if patient is not None:
            loaded = load_patients(patients_path(c.config_dir, patients), schedules)
            person = next((p for p in loaded.patients if p.id == patient), None)
            if person is None:
                raise UnknownPatient(f"no valid patient with id {patient!r} in {loaded.path}")
        protocol_id = protocol or (person.protocol if person else schedules.default_protocol)
        chosen_protocol = schedules.protocols.get(protocol_id or "")
        candidates = [chosen_protocol] if chosen_protocol else list(schedules.protocols.values())
        found = next(((p, m) for p in candidates for m in p.milestones if m.id == milestone), None)
        if found is None:
            known = ", ".join(m.id for p in candidates for m in p.milestones)
            _fail(f"no milestone {milestone!r} (known: {known})", 2)
        proto, step = found
        lang = language or (person.language if person else schedules.languages[0])
        if lang not in schedules.languages:
            _fail(f"unsupported language {lang!r} (supported: {', '.join(schedules.languages)})", 2)
        chosen = [channel] if channel else list(step.channels)
        for ch in chosen:
            if ch not in CHANNELS:
                _fail(f"unknown channel {ch!r} (known: {', '.join(CHANNELS)})", 2)
        surgery = (
            person.surgery_date
            if person
            else datetime.now(ZoneInfo(schedules.clinic.timezone)).date()
        )
        from datetime import timedelta  # noqa: PLC0415

        send_date = surgery + timedelta(days=step.offset_days)
        context = message_context(
            clinic=schedules.clinic,
            first_name=person.first_name if person else "Dana",
            last_name=person.last_name if person else "Reyes",
            milestone=step.id,
            occurrence=1,
            surgery_date=surgery,
            send_date=send_date,
            unsubscribe_url=None,
        )
        for ch in chosen:
            rendered = templates.render(ch, lang, step.template, context)
            out.rule(f"{proto.id} / {step.id} / {ch} / {lang}")
            if ch == "sms":
                count = count_segments(rendered.text)
                out.print(_escape(rendered.text))
                out.print(
                    f"[dim]{count.units} {count.encoding} units, {count.segments} segment(s)[/]"
                )
            else:
                out.print(f"Subject: {_escape(rendered.subject)}\n")
                out.print(_escape(rendered.text))


# -- demo and run ----------------------------------------------------------------------------


@app.command()
def demo(ctx: typer.Context, patients: PatientsOpt = None) -> None:
    """The shipped protocol for the sample patients on a simulated clock, console delivery."""
    from reminders.demo import run_demo  # noqa: PLC0415  # keeps start-up of other commands light

    c = _ctx(ctx)
    with _errors():
        schedules, templates = c.checked_config()
        run_demo(schedules, templates, patients_path(c.config_dir, patients), out)


def _service(c: Context, patients: Path | None) -> Any:
    from reminders.service import Service  # noqa: PLC0415  # keeps start-up of other commands light

    logs.configure(
        os.environ.get("REMINDERS_LOG_FORMAT"), os.environ.get("REMINDERS_LOG_LEVEL", "INFO")
    )
    return Service(
        config_dir=c.config_dir,
        database_url=c.database or default_database_url(c.config_dir),
        patients=patients_path(c.config_dir, patients),
        console=out,
    )


@app.command()
def run(ctx: typer.Context, patients: PatientsOpt = None) -> None:
    """The service: sync, dispatch and HTTP endpoints until SIGTERM or Ctrl-C."""
    c = _ctx(ctx)
    with _errors():
        code = _service(c, patients).run()
    raise typer.Exit(code)


@app.command()
def serve(ctx: typer.Context, patients: PatientsOpt = None) -> None:
    """Only the HTTP endpoints (webhooks, unsubscribe, health, metrics); no dispatching."""
    c = _ctx(ctx)
    with _errors():
        code = _service(c, patients).run(dispatch=False)
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
