"""``sync``, ``tick``, ``demo``, ``run`` and ``serve``: the commands that change what is sent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reminders import logs
from reminders.app import App
from reminders.dispatch import TickReport
from reminders.errors import SyncRefused
from reminders.lifecycle import EnrollmentStatus, Outcome
from reminders.patients import records_with_problems
from reminders.sync import SyncReport, sync_patients

from .root import (
    EXIT_STUCK,
    JsonOpt,
    NowOpt,
    PatientsOpt,
    SimulateOpt,
    app,
    checked_now,
    err,
    errors,
    make_app,
    out,
    print_json,
)
from .status import counted, stuck


def run_sync(application: App, *, now: datetime, force: bool) -> SyncReport:
    """Apply the patients file with a progress bar on a terminal."""
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

        return sync_patients(
            application.store,
            application.config.schedules,
            application.patients,
            now,
            force=force,
            progress=progress,
        )


def print_sync(report: SyncReport) -> None:
    """What a sync changed, in a line (and the ids when there are few)."""
    for problem in report.problems:
        err.print(f"[yellow]skipped[/] {escape(str(problem))}")
    parts = [
        f"{len(report.enrolled)} enrolled",
        f"{len(report.updated)} updated",
        f"{len(report.paused)} paused",
        f"{len(report.withdrawn)} withdrawn",
        f"{report.unchanged} unchanged",
        f"{records_with_problems(report.problems)} with problems",
    ]
    if report.problems:
        parts[-1] += f" ({len(report.problems)} problem{'s' if len(report.problems) > 1 else ''})"
    reminders = ", ".join(f"{n} {k}" for k, n in sorted(report.reminders.items()) if n)
    out.print("sync: " + ", ".join(parts) + (f"; reminders: {reminders}" if reminders else ""))
    for label, ids in (
        ("enrolled", report.enrolled),
        ("updated", report.updated),
        (EnrollmentStatus.PAUSED, report.paused),
        (EnrollmentStatus.WITHDRAWN, report.withdrawn),
    ):
        if ids and len(ids) <= 20:
            out.print(f"  {label}: {', '.join(ids)}")


@contextmanager
def refusal(as_json: bool) -> Iterator[None]:
    """With ``--json``, a refused sync is printed as JSON on stdout (exit 1 all the same)."""
    try:
        yield
    except SyncRefused as exc:
        if not as_json:
            raise
        print_json(
            {
                "refused": True,
                "error": str(exc),
                "enrolled": exc.enrolled,
                "withdrawing": len(exc.withdrawing),
                "patient_ids": exc.withdrawing,
            }
        )
        raise typer.Exit(1) from None


@app.command()
def sync(
    ctx: typer.Context,
    now: NowOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Allow withdrawing more than 20% of enrolled patients.")
    ] = False,
    patients: PatientsOpt = None,
    as_json: JsonOpt = False,
    simulate: SimulateOpt = False,
) -> None:
    """Apply the patients file: enrol, update, re-plan, withdraw; print what changed."""
    at = checked_now(now, simulate=simulate)
    application = make_app(ctx, patients)
    with errors(), refusal(as_json):
        application.config  # noqa: B018  # a bad configuration changes nothing: check it first
        report = run_sync(application, now=at, force=force)
    if as_json:
        counted = {"records_with_problems": records_with_problems(report.problems)}
        print_json({**report.as_dict(), **counted})
    else:
        print_sync(report)
    if report.problems:
        raise typer.Exit(1)


@app.command()
def tick(
    ctx: typer.Context,
    now: NowOpt = None,
    patients: PatientsOpt = None,
    as_json: JsonOpt = False,
    simulate: SimulateOpt = False,
) -> None:
    """Sync, then deliver everything due at --now (default: now), wait for the outcome, exit.

    Exit 0 when all went well; 1 when a patient record had a problem or a reminder failed;
    3 when reminders are stuck after it (in doubt, retrying, or expired during it after
    failed tries: a provider outage; ``reminders status`` lists them).
    """
    at = checked_now(now, simulate=simulate)
    application = make_app(ctx, patients)
    with errors():
        application.settings  # noqa: B018  # every environment problem before the database
        config = application.config
        with refusal(as_json):
            report = run_sync(application, now=at, force=False)
        if not as_json:
            print_sync(report)
        # With --json, stdout carries only the JSON document; the console dry run goes to stderr.
        channels, notes = application.channels(out if not as_json else err)
        if not as_json:
            for note in notes:
                err.print(f"[dim]{escape(note)}[/]")
        result: TickReport = application.dispatcher(config, channels).tick(at)
        left = stuck(application, at)
    counts = result.as_dict()
    if as_json:
        problems = [str(p) for p in report.problems]
        print_json({**counts, "problems": problems, "stuck": left})
    else:
        out.print("tick: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        if any(left.values()):
            out.print(f"stuck: {counted(left)}; `reminders status` lists them")
    if report.problems or counts[Outcome.FAILED]:
        raise typer.Exit(1)
    if any(left.values()):
        raise typer.Exit(EXIT_STUCK)


@app.command()
def demo(ctx: typer.Context, patients: PatientsOpt = None) -> None:
    """The shipped protocol for the sample patients on a simulated clock, console delivery."""
    from reminders.demo import run_demo  # noqa: PLC0415  # keeps start-up of other commands light

    application = make_app(ctx, patients)
    with errors():
        run_demo(application.config, application.patients, out)


def _serve(ctx: typer.Context, patients: Path | None, *, dispatch: bool) -> None:
    from reminders.service import Service  # noqa: PLC0415  # keeps start-up of other commands light

    application = make_app(ctx, patients)
    logs.configure(
        os.environ.get("REMINDERS_LOG_FORMAT"), os.environ.get("REMINDERS_LOG_LEVEL", "INFO")
    )
    with errors():
        code = Service(application, console=out).run(dispatch=dispatch)
    raise typer.Exit(code)


@app.command()
def run(ctx: typer.Context, patients: PatientsOpt = None) -> None:
    """The service: sync, dispatch and HTTP endpoints until SIGTERM or Ctrl-C."""
    _serve(ctx, patients, dispatch=True)


@app.command()
def serve(ctx: typer.Context, patients: PatientsOpt = None) -> None:
    """Only the HTTP endpoints (webhooks, unsubscribe, health, metrics); no dispatching."""
    _serve(ctx, patients, dispatch=False)
