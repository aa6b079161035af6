"""Dispatch: throughput through the real twilio client, and the project's own CPU per message.

SPEC section 10: >= 300 messages/s through the real twilio client to a local
Twilio-compatible endpoint with rate limiting off; <= 1 ms of the project's own CPU per
message (the provider's latency and the twilio client excluded).

N patients (SMS only, one time zone, the same surgery date) each have the day-1
reminder due; one ``Dispatcher.tick`` at a pinned ``now`` just after it delivers them all
with the service's settings (8 workers, batches of 100, rate limit off, JSON logs at
INFO as ``reminders run`` writes them, to /dev/null, the metrics observer attached):

1. through an in-memory channel: the CPU of this process per message is the project's
   overhead (claim, render, attempt and outcome records, logs, metrics);
2. through ``TwilioChannel`` to ``python -m reminders.testing.twilio`` in its own process:
   messages per second (wall clock), and the CPU per message minus the CPU the worker
   threads spent inside ``TwilioChannel.send`` (the twilio client, requests, HTTP).

    .venv/bin/python -m bench.dispatch [--postgres] [--patients N] [--profile]
"""

from __future__ import annotations

import cProfile
import logging
import os
import pstats
import threading
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from bench.common import (
    analyze,
    config_dir,
    database,
    fake_twilio,
    figure,
    header,
    note,
    parser,
    twilio_env,
    workdir,
    write_patients_csv,
)
from reminders import logs
from reminders.channels.base import Channel, Message, Receipt
from reminders.channels.memory import MemoryChannel
from reminders.channels.twilio import TwilioChannel
from reminders.config import load_schedules
from reminders.dispatch import Dispatcher
from reminders.metrics import Metrics
from reminders.models import Schedules
from reminders.ratelimit import TokenBucket
from reminders.settings import Settings
from reminders.store import Store
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher

RATE_TARGET = 300.0
CPU_TARGET_MS = 1.0
ZONE = "America/New_York"


class TimedChannel:
    """Wraps a channel and adds up the CPU its callers' threads spend inside ``send``."""

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.name = inner.name
        self.cpu = 0.0
        self.wall = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    def send(self, message: Message) -> Receipt:
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return self.inner.send(message)
        finally:
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            with self._lock:
                self.cpu += cpu
                self.wall += wall
                self.calls += 1

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:  # reconcile, if the inner channel has it
        return getattr(self.inner, name)


def _profile_workers(dispatcher: Dispatcher, profiles: list[cProfile.Profile]) -> None:
    """cProfile the worker threads (each step of a message) and the thread that runs the
    batches (claim, attempts, outcomes, logs): cProfile only sees the thread that enabled it."""
    local = threading.local()
    lock = threading.Lock()

    def profiled(run: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prof = getattr(local, "profile", None)
            if prof is None:
                prof = local.profile = cProfile.Profile()
                with lock:
                    profiles.append(prof)
            if getattr(local, "active", False):  # a step inside a profiled batch
                return run(*args, **kwargs)
            local.active = True
            prof.enable()
            try:
                return run(*args, **kwargs)
            finally:
                prof.disable()
                local.active = False

        return wrapper

    dispatcher._guarded = profiled(dispatcher._guarded)  # type: ignore[method-assign]
    dispatcher._batch = profiled(dispatcher._batch)  # type: ignore[method-assign]


def _print_profile(title: str, profiles: list[cProfile.Profile]) -> None:
    print(f"\n-- profile: {title}, all threads (tottime) --")
    stats = pstats.Stats(profiles[0])
    for prof in profiles[1:]:
        stats.add(prof)
    stats.sort_stats("tottime").print_stats(30)


def _quiet_service_logs() -> None:
    """Logs as ``reminders run`` configures them (JSON, INFO), written to /dev/null."""
    logs.configure("json", "INFO")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)  # noqa: S101
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115  # for the life of the process


def _tick(
    url: str,
    *,
    cfg: Path,
    csv_path: Path,
    schedules: Schedules,
    channel: Channel,
    now: datetime,
    profiles: list[cProfile.Profile] | None,
) -> dict[str, Any]:
    """Sync a fresh store, then time one tick that delivers everything due at ``now``."""
    store = Store(url)
    try:
        sync_patients(store, schedules, csv_path, now - timedelta(days=1))
        analyze(store)
        settings = Settings.from_env({})
        dispatcher = make_dispatcher(
            store,
            schedules,
            Templates(cfg / "templates"),
            {"sms": channel},
            owner="bench-dispatch",
            limits={"sms": TokenBucket(0)},
            workers=settings.workers,
            batch_size=settings.batch_size,
            lease=timedelta(seconds=settings.lease_seconds),
            observer=Metrics(store, lambda: now),
        )
        main = None
        if profiles is not None:
            _profile_workers(dispatcher, profiles)
            main = cProfile.Profile()
            profiles.append(main)
            main.enable()
        cpu, wall = time.process_time(), time.perf_counter()
        report = dispatcher.tick(now, complete=False)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if main:
            main.disable()
        with store.read() as tx:
            statuses = dict(
                tx.conn.execute(
                    sa.text("SELECT status, count(*) FROM reminders GROUP BY status")
                ).all()
            )
    finally:
        store.close()
    return {"cpu": cpu, "wall": wall, "counts": report.as_dict(), "statuses": statuses}


def main() -> int:
    p = parser(__doc__.splitlines()[0], patients=3_000)
    p.add_argument("--profile", action="store_true", help="cProfile both ticks")
    args = p.parse_args()
    n = args.patients
    header(f"bench/dispatch.py: {n:,} due SMS in one tick", args.postgres)
    _quiet_service_logs()
    zone = ZoneInfo(ZONE)
    surgery = datetime.now(UTC).date() - timedelta(days=3)
    # The day-1 reminder (10:00 local) of every patient, 5 s after it fell due.
    now = datetime.combine(
        surgery + timedelta(days=1), clock_time(10, 0, 5), tzinfo=zone
    ).astimezone(UTC)
    memory_profile: list[cProfile.Profile] | None = [] if args.profile else None
    twilio_profile: list[cProfile.Profile] | None = [] if args.profile else None
    with workdir("dispatch") as tmp:
        cfg = config_dir(tmp)
        csv_path = tmp / "patients.csv"
        write_patients_csv(
            csv_path, n, start=surgery, email=False, zones=(ZONE,), surgery_date=surgery
        )
        schedules = load_schedules(cfg)
        with database(args.postgres, tmp, "memory") as url:
            memory = MemoryChannel("sms")
            mem = _tick(
                url,
                cfg=cfg,
                csv_path=csv_path,
                schedules=schedules,
                channel=memory,
                now=now,
                profiles=memory_profile,
            )
        with fake_twilio() as (fake_url, _proc), database(args.postgres, tmp, "twilio") as url:
            env = twilio_env(fake_url)
            settings = Settings.from_env(env)
            assert settings.twilio is not None  # noqa: S101
            timed = TimedChannel(TwilioChannel(settings.twilio))
            twi = _tick(
                url,
                cfg=cfg,
                csv_path=csv_path,
                schedules=schedules,
                channel=timed,
                now=now,
                profiles=twilio_profile,
            )

    sent_mem, sent_twi = mem["counts"]["sent"], twi["counts"]["sent"]
    mem_cpu_ms = mem["cpu"] / max(sent_mem, 1) * 1000
    rate = sent_twi / twi["wall"]
    twi_cpu_ms = twi["cpu"] / max(sent_twi, 1) * 1000
    client_ms = timed.cpu / max(timed.calls, 1) * 1000
    own_ms = twi_cpu_ms - client_ms
    figure(
        "through twilio client: messages/s",
        f"{rate:,.0f}/s",
        f">= {RATE_TARGET:g}/s",
        rate >= RATE_TARGET,
    )
    figure(
        "project CPU/message (memory channel)",
        f"{mem_cpu_ms:.2f} ms",
        f"<= {CPU_TARGET_MS:g} ms",
        mem_cpu_ms <= CPU_TARGET_MS,
    )
    figure(
        "project CPU/message (twilio run - client CPU)",
        f"{own_ms:.2f} ms",
        f"<= {CPU_TARGET_MS:g} ms",
        own_ms <= CPU_TARGET_MS,
    )
    figure("  twilio run: all CPU/message", f"{twi_cpu_ms:.2f} ms", "-", None)
    figure("  twilio run: CPU inside TwilioChannel.send", f"{client_ms:.2f} ms", "-", None)
    figure(
        "  twilio run: wall inside send (mean)",
        f"{timed.wall / max(timed.calls, 1) * 1000:.2f} ms",
        "-",
        None,
    )
    figure("memory channel: messages/s", f"{sent_mem / mem['wall']:,.0f}/s", "-", None)
    note(
        f"memory tick: {sent_mem:,} sent in {mem['wall']:.2f} s wall, {mem['cpu']:.2f} s CPU; "
        f"twilio tick: {sent_twi:,} sent in {twi['wall']:.2f} s wall, {twi['cpu']:.2f} s CPU"
    )
    others = {
        k: v for run in (mem, twi) for k, v in run["counts"].items() if v and k not in ("sent",)
    }
    if others or sent_mem != n or sent_twi != n:
        print(
            f"  ERROR: expected {n} sent each time; memory {mem['counts']}, twilio {twi['counts']}"
        )
        return 1
    if memory_profile and twilio_profile:
        _print_profile("memory-channel tick", memory_profile)
        _print_profile("twilio tick", twilio_profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
