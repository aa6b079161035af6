"""``validate`` and ``preview``: what a coordinator checks before patients receive anything."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from reminders.compose import Composer
from reminders.config import load_schedules
from reminders.errors import ReminderError, UnknownPatient
from reminders.models import CHANNELS, Milestone, Patient, Protocol, Recipient, Schedules
from reminders.sms import count_segments
from reminders.templates import TEMPLATES_DIR, Templates
from reminders.validation import load_patients

from .root import JsonOpt, PatientsOpt, app, err, errors, fail, make_app, out

#: The sample patient ``preview`` renders for when no ``--patient`` is given.
SAMPLE_FIRST, SAMPLE_LAST = "Dana", "Reyes"


@app.command()
def validate(ctx: typer.Context, patients: PatientsOpt = None, as_json: JsonOpt = False) -> None:
    """Check schedules.yaml, every template (every language and channel) and the patients file.

    ``--json``: ``{"ok", "problems": [text], "problem_count", "records_with_problems",
    "patients", "patients_file", "protocols": [{"id", "version", "milestones"}],
    "sms_templates": [{"language", "template", "encoding", "units", "segments"}]}``.
    """
    application = make_app(ctx, patients)
    problems: list[str] = []
    try:
        schedules = load_schedules(application.config_dir)
    except ReminderError as exc:
        if as_json:
            out.print_json(json.dumps(_checked(False, [str(exc)], 0, 0, application.patients)))
            raise typer.Exit(1) from None
        fail(escape(str(exc)))
    composer = Composer(schedules, Templates(application.config_dir / TEMPLATES_DIR))
    template_errors, checks = composer.check()
    problems.extend(str(e) for e in template_errors)
    patient_count = rejected = 0
    try:
        loaded = load_patients(application.patients, schedules)
    except ReminderError as exc:
        problems.append(str(exc))
    else:
        problems.extend(str(p) for p in loaded.problems)
        patient_count, rejected = len(loaded.patients), loaded.rejected
        problems.extend(composer.long_sms(loaded.patients))
    if as_json:
        result = _checked(not problems, problems, patient_count, rejected, application.patients)
        result["protocols"] = [
            {"id": p.id, "version": p.version, "milestones": [m.id for m in p.milestones]}
            for p in schedules.protocols.values()
        ]
        result["sms_templates"] = [
            {
                "language": c.language,
                "template": c.template,
                "encoding": c.count.encoding,
                "units": c.count.units,
                "segments": c.count.segments,
            }
            for c in checks
        ]
        out.print_json(json.dumps(result))
        if problems:
            raise typer.Exit(1)
        return
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
        records = (
            f"; {_n(rejected, 'patient record')} with problems (sync skips them), "
            f"{_n(patient_count, 'patient')} ready"
            if rejected
            else ""
        )
        err.print(f"[red]{_n(len(problems), 'problem')} found[/]{records}")
        raise typer.Exit(1)
    protocols = ", ".join(
        f"{p.id} v{p.version} ({len(p.milestones)} milestones)"
        for p in schedules.protocols.values()
    )
    out.print(
        f"[green]ok[/]: {protocols}; {len(checks)} SMS templates; "
        f"{patient_count} patients in {application.patients}"
    )


def _n(count: int, noun: str) -> str:
    """``1 problem``, ``3 problems``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _checked(
    ok: bool, problems: list[str], patients: int, rejected: int, path: Path
) -> dict[str, Any]:
    return {
        "ok": ok,
        "problems": problems,
        "problem_count": len(problems),
        "records_with_problems": rejected,
        "patients": patients,
        "patients_file": str(path),
        "protocols": [],
        "sms_templates": [],
    }


def _person(schedules: Schedules, patients_file: Path, patient: str) -> Patient:
    loaded = load_patients(patients_file, schedules)
    person = next((p for p in loaded.patients if p.id == patient), None)
    if person is None:
        raise UnknownPatient(f"no valid patient with id {patient!r} in {loaded.path}")
    return person


def _milestone(
    schedules: Schedules, milestone: str, protocol: str | None, person: Patient | None
) -> tuple[Protocol, Milestone]:
    """The milestone to preview: in ``--protocol``, else the patient's, else the one protocol
    that has it; exits 2 naming the protocols when that is unknown or ambiguous."""
    protocols = schedules.protocols
    if protocol is not None and protocol not in protocols:
        fail(f"no protocol {protocol!r} (known: {', '.join(protocols)})", 2)
    within = protocol or (person.protocol if person else None)
    having = [p for p in protocols.values() if any(m.id == milestone for m in p.milestones)]
    if within is not None:
        chosen = protocols[within]
        step = next((m for m in chosen.milestones if m.id == milestone), None)
        if step is not None:
            return chosen, step
        elsewhere = f"; it is in {', '.join(p.id for p in having)}" if having else ""
        known = ", ".join(m.id for m in chosen.milestones)
        fail(f"no milestone {milestone!r} in protocol {within} (known: {known}){elsewhere}", 2)
    if len(having) > 1:
        names = ", ".join(p.id for p in having)
        fail(
            f"milestone {milestone!r} is in several protocols: {names}; choose one with --protocol",
            2,
        )
    if not having:
        known = "; ".join(
            f"{p.id}: {', '.join(m.id for m in p.milestones)}" for p in protocols.values()
        )
        fail(f"no milestone {milestone!r} (known: {known})", 2)
    [found] = having
    return found, next(m for m in found.milestones if m.id == milestone)


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
        typer.Option(
            "--protocol",
            help="Protocol (default: the patient's, else the one protocol with that milestone).",
        ),
    ] = None,
    patients: PatientsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the rendered message of a milestone, for a patient or with sample data.

    ``--json``: a list, one object per channel: ``{"protocol", "milestone", "channel",
    "language", "patient_id", "text"}``, plus ``"subject"`` for email and ``"sms":
    {"encoding", "units", "segments"}`` for SMS.
    """
    application = make_app(ctx, patients)
    with errors():
        schedules = load_schedules(application.config_dir)
        composer = Composer(schedules, Templates(application.config_dir / TEMPLATES_DIR))
        person = _person(schedules, application.patients, patient) if patient else None
        proto, step = _milestone(schedules, milestone, protocol, person)
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
        shown: list[dict[str, Any]] = []
        for ch in chosen:
            rendered = composer.render_first(ch, recipient, step)
            item: dict[str, Any] = {
                "protocol": proto.id,
                "milestone": step.id,
                "channel": ch,
                "language": lang,
                "patient_id": person.id if person else None,
                "text": rendered.text,
            }
            if ch == "sms":
                count = count_segments(rendered.text)
                item["sms"] = {
                    "encoding": count.encoding,
                    "units": count.units,
                    "segments": count.segments,
                }
            else:
                item["subject"] = rendered.subject
            shown.append(item)
    if as_json:
        out.print_json(json.dumps(shown))
        return
    for item in shown:
        out.rule(f"{item['protocol']} / {item['milestone']} / {item['channel']} / {lang}")
        if "sms" in item:
            sms = item["sms"]
            out.print(escape(item["text"]))
            out.print(
                f"[dim]{sms['units']} {sms['encoding']} units, {sms['segments']} segment(s)[/]"
            )
        else:
            out.print(f"Subject: {escape(item['subject'])}\n")
            out.print(escape(item["text"]))
