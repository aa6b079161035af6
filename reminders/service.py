"""``reminders run``: the long-running service, and ``reminders serve``: its HTTP side alone.

APScheduler 3 is a detail of this module: it decides *when* to call
:meth:`Dispatcher.tick` and the sync; the outbox in the database decides *what*.

Jobs (all with ``coalesce=True``, ``max_instances=1`` and ``misfire_grace_time=None``,
so a pause or a slow batch delays a run but never drops one):

* ``wake``: a one-off job at the next due time, re-armed after every tick and sync;
* ``poll``: a safety tick every 15 seconds;
* ``watch``: re-syncs when schedules.yaml, a template or the patients file changes;
* ``sync``: a full sync every 10 minutes whatever happened;
* ``housekeeping``: hourly database upkeep.

SIGTERM or SIGINT: stop claiming, let in-flight sends finish, release leases, stop
the HTTP server, exit 0 (1 if that took longer than :data:`STOP_TIMEOUT`).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Final
from zoneinfo import ZoneInfo

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from rich.console import Console
from rich.table import Table

from reminders import logs
from reminders.accounts import IDLE_TIMEOUT
from reminders.app import App, Config
from reminders.errors import ReminderError
from reminders.http import DashboardSettings, WebContext, create_app, secure_cookies
from reminders.metrics import Metrics
from reminders.sync import sync_patients
from reminders.templates import TEMPLATES_DIR

log = logs.get("reminders.service")

#: The dispatcher runs at least this often even when nothing seems due.
POLL: Final = timedelta(seconds=15)
#: Files are checked for changes this often.
WATCH: Final = timedelta(seconds=5)
#: A full sync runs this often even when no file changed.
SYNC_EVERY: Final = timedelta(minutes=10)
#: Longest a graceful stop may take before the process gives up and exits 1.
STOP_TIMEOUT: Final = 40.0
_JOB_DEFAULTS: Final = {"coalesce": True, "misfire_grace_time": None, "max_instances": 1}


class Service:
    """Sync, dispatch and serve HTTP until a signal asks it to stop."""

    def __init__(
        self,
        app: App,
        *,
        console: Console,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = app
        self.console = console
        self.clock = clock
        self.settings = app.settings
        #: The last good configuration (a bad edit keeps it).
        self.config: Config = app.config
        self.store = app.store
        self.metrics = Metrics(self.store, clock)
        channels, self.notes = app.channels(console)
        self.dispatcher = app.dispatcher(self.config, channels, observer=self.metrics)
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults=_JOB_DEFAULTS)
        self._stop = threading.Event()
        self._dispatching = threading.Lock()
        self._seen: tuple[float, ...] = ()
        #: The last load of the configuration was rejected (so the next good one is logged).
        self._rejected = False
        self.http: uvicorn.Server | None = None

    # -- jobs ----------------------------------------------------------------------------

    def _mtimes(self) -> tuple[float, ...]:
        config_dir = self.app.config_dir
        templates = sorted((config_dir / TEMPLATES_DIR).rglob("*.j2"))
        paths = [config_dir / "schedules.yaml", self.app.patients, *templates]
        return tuple(p.stat().st_mtime_ns if p.exists() else 0.0 for p in paths)

    def watch(self) -> None:
        """Re-sync if a configuration or patients file changed since the last look."""
        if self._mtimes() != self._seen:
            self.sync()

    def sync(self) -> None:
        """Re-read configuration and patients; a bad configuration keeps the last good one."""
        self._seen = self._mtimes()
        try:
            config = self.app.load_config()
        except ReminderError as exc:
            log.error("config.rejected", error=str(exc), kept="last good configuration")
            self._rejected = True
            config = self.config
        else:
            if self._rejected:
                log.info("config.accepted", schedules=config.schedules.fingerprint)
                self._rejected = False
            if config.schedules.fingerprint != self.config.schedules.fingerprint:
                log.info("config.changed", schedules=config.schedules.fingerprint)
        with self._dispatching:
            if config is not self.config:
                self.config = config
                self.dispatcher.use(self.app.sending(config))
            try:
                report = sync_patients(
                    self.store, config.schedules, self.app.patients, self.clock()
                )
            except ReminderError as exc:
                log.error("sync.refused", error=str(exc))
                return
        for problem in report.problems:
            log.warning("sync.record_skipped", problem=str(problem))
        if report.changed:
            log.info(
                "sync.applied",
                enrolled=len(report.enrolled),
                updated=len(report.updated),
                paused=len(report.paused),
                withdrawn=len(report.withdrawn),
                unchanged=report.unchanged,
                reminders=dict(report.reminders),
            )
        self._arm()

    def dispatch(self) -> None:
        """Deliver everything due now, then arm the wake-up for the next due time."""
        if self._stop.is_set():
            return
        with self._dispatching:
            try:
                report = self.dispatcher.tick(complete=False)
            except ReminderError as exc:
                # The database failed mid-tick: the leases are given back (the error says
                # how many); the next wake-up or poll tries again.
                log.error("tick.failed", error=str(exc))
                return
        counts = {k: v for k, v in report.as_dict().items() if v}
        if counts:
            log.info("tick", **counts)
        self._arm()

    def housekeeping(self) -> None:
        """Mark finished enrollments completed; forget idle dashboard sessions; checkpoint SQLite's WAL so it does not grow."""
        done = self.dispatcher.complete(self.clock())
        if done:
            log.info("enrollments.completed", count=len(done))
        with self.store.write() as tx:
            ended = tx.users.end_idle_sessions(self.clock(), IDLE_TIMEOUT)
        if ended:
            log.info("sessions.ended_idle", count=ended)
        self.store.checkpoint()

    def _arm(self) -> None:
        """Schedule a tick at the next due time (the poll covers anything later than it)."""
        if self._stop.is_set() or not self.scheduler.running:
            return
        with self.store.read() as tx:
            due = tx.views.next_due()
        if due is None:
            return
        when = max(due, self.clock())
        if when - self.clock() < POLL:
            self.scheduler.add_job(
                self.dispatch, "date", run_date=when, id="wake", replace_existing=True
            )

    def wake(self) -> None:
        """Dispatch now: a reply to a patient or a notice to the care team was just queued."""
        if self._stop.is_set() or not self.scheduler.running:
            return
        self.scheduler.add_job(
            self.dispatch, "date", run_date=self.clock(), id="wake", replace_existing=True
        )

    # -- running ---------------------------------------------------------------------------

    def dashboard(self) -> DashboardSettings | None:
        """The dashboard's settings, or None (it is off) without REMINDERS_SECRET_KEY."""
        secret = self.settings.secret()
        if secret is None:
            return None
        return DashboardSettings(
            secret=secret,
            composer=lambda: self.app.sending(self.config),
            secure_cookies=secure_cookies(self.settings.public_url, self.settings.http_host),
            proxy_header=self.settings.auth_proxy_header,
            proxies=self.settings.proxies(),
        )

    def web_context(self, running: Callable[[], bool]) -> WebContext:
        """What the HTTP handlers need."""
        return WebContext(
            store=self.store,
            twilio_auth_token=self.settings.twilio.auth_token if self.settings.twilio else None,
            twilio_account_sid=self.settings.twilio.account_sid if self.settings.twilio else None,
            public_url=self.settings.public_url,
            secret_key=self.settings.secret(),
            schedules=lambda: self.config.schedules,
            templates=lambda: self.config.templates,
            metrics=self.metrics,
            running=running,
            clock=self.clock,
            dashboard=self.dashboard(),
            wake=self.wake,
        )

    def _serve_http(self, running: Callable[[], bool]) -> threading.Thread:
        config = uvicorn.Config(
            create_app(self.web_context(running)),
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self.http = uvicorn.Server(config)
        thread = threading.Thread(target=self.http.run, name="http", daemon=True)
        thread.start()
        return thread

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("service.stopping", signal=signal.Signals(signum).name)
        self._stop.set()
        self.dispatcher.stop()

    def show_upcoming(self, limit: int = 15) -> None:
        """Print what will be sent next, with each patient's local time, on a terminal.

        Elsewhere (journald, ``docker logs``, a pipe) stdout gets nothing: one ``upcoming``
        log line carries the same reminders, so every line there stays JSON.
        """
        with self.store.read() as tx:
            entries = tx.views.upcoming(limit)
            zones = {e.patient_id: tx.views.enrollment(e.patient_id).timezone for e in entries}
        if not self.console.is_terminal:
            log.info(
                "upcoming",
                count=len(entries),
                reminders=[
                    {
                        "patient_id": e.patient_id,
                        "milestone": e.milestone,
                        "occurrence": e.occurrence,
                        "channel": e.channel,
                        "not_before": e.not_before.isoformat(),
                    }
                    for e in entries
                ],
            )
            return
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

    def run(self, *, http: bool = True, dispatch: bool = True) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code."""
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)
        for note in self.notes:
            log.info("channel", detail=note)
        if dispatch:
            self.sync()
            self.show_upcoming()
            s = self.scheduler
            s.add_job(
                self.dispatch,
                "interval",
                seconds=POLL.total_seconds(),
                id="poll",
                next_run_time=self.clock(),
            )
            s.add_job(self.watch, "interval", seconds=WATCH.total_seconds(), id="watch")
            s.add_job(self.sync, "interval", seconds=SYNC_EVERY.total_seconds(), id="sync")
            s.add_job(self.housekeeping, "interval", hours=1, id="housekeeping")
            s.start()
        http_thread = (
            self._serve_http(lambda: self.scheduler.running or not dispatch) if http else None
        )
        log.info(
            "service.started",
            owner=self.app.owner,
            database=self.store.safe_url,
            http=f"{self.settings.http_host}:{self.settings.http_port}" if http else None,
        )
        while not self._stop.wait(0.5):
            if http_thread is not None and not http_thread.is_alive():
                log.error("http.stopped", reason="the HTTP server exited (port in use?)")
                self._stop.set()
                self.dispatcher.stop()
                code = 1
                break
        else:
            code = 0
        return self._shutdown(code, http_thread)

    def _shutdown(self, code: int, http_thread: threading.Thread | None) -> int:
        done = threading.Event()

        def watchdog() -> None:
            if not done.wait(STOP_TIMEOUT):
                log.error("service.stop_timeout", seconds=STOP_TIMEOUT)
                os._exit(1)

        threading.Thread(target=watchdog, name="stop-watchdog", daemon=True).start()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # waits for a running tick: in-flight sends finish
        released = self.dispatcher.release()
        if self.http is not None:
            self.http.should_exit = True
        if http_thread is not None:
            http_thread.join(timeout=10)
        self.store.close()
        done.set()
        log.info("service.stopped", released_leases=released, exit_code=code)
        return code
