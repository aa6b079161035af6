"""``reminders run``: the long-running service.

APScheduler 3 is a detail of this module: it only decides *when* to call
:meth:`Dispatcher.tick` and the sync. The outbox in the database decides *what*.
Jobs run with ``coalesce=True`` and ``misfire_grace_time=None`` so that a pause or
a slow batch delays a tick but never drops one.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Final
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from rich.console import Console
from rich.table import Table

from reminders.config import load_schedules
from reminders.errors import ReminderError
from reminders.models import Schedules
from reminders.settings import Settings, build_dispatcher
from reminders.store import Store
from reminders.sync import sync_patients
from reminders.templates import TEMPLATES_DIR, Templates, check_templates

log = logging.getLogger("reminders.service")

#: The dispatcher runs at least this often even when nothing seems due (safety poll).
POLL: Final = timedelta(seconds=15)
#: The patients file and the configuration are checked this often.
SYNC_EVERY: Final = timedelta(seconds=60)
#: Longest a graceful stop waits for in-flight sends.
STOP_TIMEOUT: Final = 30.0


class Service:
    """Sync and dispatch on a schedule until a signal asks it to stop."""

    def __init__(
        self, *, config_dir: Path, database_url: str, patients: Path, console: Console
    ) -> None:
        self.config_dir = config_dir
        self.patients = patients
        self.console = console
        self.store = Store(database_url)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._seen: tuple[float, ...] = ()
        schedules, templates = self._load_config()
        self.schedules = schedules
        self.dispatcher, notes = build_dispatcher(
            self.store, schedules, templates, Settings.from_env(), owner=self.owner, console=console
        )
        for note in notes:
            console.print(f"[dim]{note}[/]")

    def _load_config(self) -> tuple[Schedules, Templates]:
        schedules = load_schedules(self.config_dir)
        templates = Templates(self.config_dir / TEMPLATES_DIR)
        errors, _ = check_templates(schedules, templates)
        if errors:
            raise errors[0]
        return schedules, templates

    def _mtimes(self) -> tuple[float, ...]:
        paths = [
            self.config_dir / "schedules.yaml",
            self.patients,
            *sorted((self.config_dir / TEMPLATES_DIR).rglob("*.j2")),
        ]
        return tuple(p.stat().st_mtime if p.exists() else 0.0 for p in paths)

    def sync(self, *, force_check: bool = False) -> None:
        """Re-read configuration and patients when changed; keep the last good config on error."""
        mtimes = self._mtimes()
        if mtimes == self._seen and not force_check:
            return
        try:
            schedules, templates = self._load_config()
        except ReminderError as exc:
            self.console.print(f"[red]configuration rejected, keeping the last good one:[/] {exc}")
            self._seen = mtimes
            return
        with self._lock:
            self.schedules = schedules
            self.dispatcher.schedules = schedules
            self.dispatcher.templates = templates
            try:
                report = sync_patients(self.store, schedules, self.patients, datetime.now(UTC))
            except ReminderError as exc:
                self.console.print(f"[red]sync refused:[/] {exc}")
                self._seen = mtimes
                return
        self._seen = mtimes
        for problem in report.problems:
            self.console.print(f"[yellow]skipped[/] {problem}")
        if report.changed:
            self.console.print(
                f"sync: {len(report.enrolled)} enrolled, {len(report.updated)} updated, "
                f"{len(report.withdrawn)} withdrawn, {report.unchanged} unchanged"
            )

    def dispatch(self) -> None:
        """Deliver everything due now."""
        if self._stop.is_set():
            return
        with self._lock:
            report = self.dispatcher.tick(datetime.now(UTC))
        counts = {k: v for k, v in report.as_dict().items() if v}
        if counts:
            self.console.print("tick: " + ", ".join(f"{n} {k}" for k, n in counts.items()))

    def show_upcoming(self, limit: int = 15) -> None:
        """Print what will be sent next, with each patient's local time."""
        with self.store.read() as tx:
            entries = [e for e in tx.timeline() if e.status == "planned"][:limit]
            zones = {e.patient_id: tx.enrollment(e.patient_id).timezone for e in entries}
        table = Table(title=f"Next {len(entries)} reminders")
        for column in ("patient", "milestone", "channel", "local time", "UTC"):
            table.add_column(column)
        for e in entries:
            zone = ZoneInfo(zones[e.patient_id])
            table.add_row(
                e.patient_id,
                f"{e.milestone} #{e.occurrence}",
                e.channel,
                e.not_before.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z"),
                e.not_before.strftime("%Y-%m-%d %H:%M"),
            )
        self.console.print(table)

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        self.console.print(f"received {signal.Signals(signum).name}: finishing in-flight sends")
        self._stop.set()
        self.dispatcher.stop()

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code."""
        self.sync(force_check=True)
        self.show_upcoming()
        scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        )
        scheduler.add_job(
            self.dispatch,
            "interval",
            seconds=POLL.total_seconds(),
            id="dispatch",
            next_run_time=datetime.now(UTC),
        )
        scheduler.add_job(self.sync, "interval", seconds=SYNC_EVERY.total_seconds(), id="sync")
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)
        scheduler.start()
        self.console.print(
            f"running as {self.owner}; database {self.store.safe_url}; Ctrl-C to stop"
        )
        while not self._stop.wait(1.0):
            pass
        scheduler.shutdown(wait=True)
        released = self.dispatcher.release()
        self.store.close()
        self.console.print(f"stopped cleanly; released {released} lease(s)")
        return 0
