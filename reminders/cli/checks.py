"""``validate`` and ``preview``: what a coordinator checks before patients receive anything."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from reminders.compose import Composer
from reminders.config import load_schedules
from reminders.errors import ReminderError, UnknownPatient
from reminders.models import CHANNELS, Patient, Recipient, Schedules
from reminders.patients import load_patients
from reminders.sms import count_segments
from reminders.templates import TEMPLATES_DIR, Templates

from .root import PatientsOpt, app, err, errors, fail, make_app, out

#: The sample patient ``preview`` renders for when no ``--patient`` is given.
SAMPLE_FIRST, SAMPLE_LAST = "Dana", "Reyes"


@app.command()
def validate(ctx: typer.Context, patients: PatientsOpt = None) -> None:
    """Check schedules.yaml, every template (every language and channel) and the patients file."""
    application = make_app(ctx, patients)
    problems: list[str] = []
    try:
        schedules = load_schedules(application.config_dir)
    except ReminderError as exc:
        fail(escape(str(exc)))
    composer = Composer(schedules, Templates(application.config_dir / TEMPLATES_DIR))
    template_errors, checks = composer.check()
    problems.extend(str(e) for e in template_errors)
    patient_count = 0
    try:
        loaded = load_patients(application.patients, schedules)
    except ReminderError as exc:
        problems.append(str(exc))
    else:
        problems.extend(str(p) for p in loaded.problems)
        patient_count = len(loaded.patients)
        problems.extend(composer.long_sms(loaded.patients))
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
            err.print(escape(line))
        err.print(f"[red]{len(problems)} problem(s) found[/]")
        raise typer.Exit(1)
    protocols = ", ".join(
        f"{p.id} v{p.version} ({len(p.milestones)} milestones)"
        for p in schedules.protocols.values()
    )
    out.print(
        f"[green]ok[/]: {protocols}; {len(checks)} SMS templates; "
        f"{patient_count} patients in {application.patients}"
    )


def _person(schedules: Schedules, patients_file: Path, patient: str) -> Patient:
    loaded = load_patients(patients_file, schedules)
    person = next((p for p in loaded.patients if p.id == patient), None)
    if person is None:
        raise UnknownPatient(f"no valid patient with id {patient!r} in {loaded.path}")
    return person


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
    application = make_app(ctx, patients)
    with errors():
        schedules = load_schedules(application.config_dir)
        composer = Composer(schedules, Templates(application.config_dir / TEMPLATES_DIR))
        person = _person(schedules, application.patients, patient) if patient else None
        protocol_id = protocol or (person.protocol if person else schedules.default_protocol)
        chosen_protocol = schedules.protocols.get(protocol_id or "")
        candidates = [chosen_protocol] if chosen_protocol else list(schedules.protocols.values())
        found = next(((p, m) for p in candidates for m in p.milestones if m.id == milestone), None)
        if found is None:
            known = ", ".join(m.id for p in candidates for m in p.milestones)
            fail(f"no milestone {milestone!r} (known: {known})", 2)
        proto, step = found
        lang = language or (person.language if person else schedules.languages[0])
        if lang not in schedules.languages:
            fail(f"unsupported language {lang!r} (supported: {', '.join(schedules.languages)})", 2)
        chosen = [channel] if channel else list(step.channels)
        for ch in chosen:
            if ch not in CHANNELS:
                fail(f"unknown channel {ch!r} (known: {', '.join(CHANNELS)})", 2)
        if person is not None:
            recipient = replace(Recipient.of(person), language=lang)
        else:
            zone = schedules.clinic.timezone
            today = datetime.now(UTC).astimezone(composer.zone(zone)).date()
            recipient = Recipient("P-SAMPLE", SAMPLE_FIRST, SAMPLE_LAST, lang, zone, today)
        for ch in chosen:
            rendered = composer.render_first(ch, recipient, step)
            out.rule(f"{proto.id} / {step.id} / {ch} / {lang}")
            if ch == "sms":
                count = count_segments(rendered.text)
                out.print(escape(rendered.text))
                out.print(
                    f"[dim]{count.units} {count.encoding} units, {count.segments} segment(s)[/]"
                )
            else:
                out.print(f"Subject: {escape(rendered.subject)}\n")
                out.print(escape(rendered.text))
