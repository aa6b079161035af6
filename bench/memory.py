"""Memory: resident set of ``reminders run`` with N enrolled patients.

SPEC section 10: ``run`` resident memory <= 150 MB with 100,000 enrolled patients.

The patients (surgery dates spread over the past 200 days and the next 30, five time
zones, SMS and email) are synced into a fresh store by this process first, as
``bench/plan.py`` does. Then ``reminders run`` starts on that store and the same CSV (its
start-up sync finds nothing changed) with SMS to ``python -m reminders.testing.twilio`` and
email to an aiosmtpd sink, both in their own processes and with rate limits off. It
delivers whatever is due now; once the due backlog is empty it is left idle for
``--idle`` seconds, then VmRSS and VmHWM (the peak) are read from /proc/<pid>/status.

A service that has been running has no large backlog: of the reminders the generated
history leaves due right now (tens of thousands at 100,000 patients), all but
``--backlog`` (default 2,000) are marked sent before ``run`` starts, so it starts as a
running service would restart, with a realistic batch to deliver.

    .venv/bin/python -m bench.memory [--postgres] [--patients N] [--idle S]
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import sqlalchemy as sa

from bench.common import (
    REPO,
    analyze,
    config_dir,
    database,
    fake_twilio,
    figure,
    free_port,
    header,
    note,
    parser,
    rss_kib,
    smtp_env,
    twilio_env,
    workdir,
    write_patients_csv,
)
from reminders.config import load_schedules
from reminders.store import Store
from reminders.sync import sync_patients

TARGET_MB = 150.0
FULL = 100_000
#: Longest wait for the due backlog to drain.
DRAIN_TIMEOUT = 600


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    """An aiosmtpd server that accepts and discards mail, in its own process: its port."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Sink",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            with contextlib.suppress(OSError):
                import socket

                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _backlog(store: Store) -> int:
    """Planned reminders of active patients due now (what the service still has to do)."""
    now = datetime.now(UTC)
    value: object = now.strftime("%Y-%m-%d %H:%M:%S.%f") if store.dialect == "sqlite" else now
    with store.read() as tx:
        return int(
            tx.conn.execute(
                sa.text(
                    "SELECT count(*) FROM reminders r JOIN enrollments e "
                    "ON e.patient_id = r.patient_id WHERE r.status = 'planned' "
                    "AND r.not_before <= :now AND r.expires_at > :now AND e.status = 'active'"
                ),
                {"now": value},
            ).scalar_one()
        )


def _settle(store: Store, keep: int) -> int:
    """Mark all but ``keep`` of the reminders due now as sent (a service was running)."""
    now = datetime.now(UTC)
    value: object = now.strftime("%Y-%m-%d %H:%M:%S.%f") if store.dialect == "sqlite" else now
    with store.write() as tx:
        return tx.conn.execute(
            sa.text(
                "UPDATE reminders SET status = 'sent', sent_at = :now, updated_at = :now "
                "WHERE id IN (SELECT id FROM reminders WHERE status = 'planned' "
                "AND not_before <= :now AND expires_at > :now ORDER BY id DESC LIMIT -1 "
                "OFFSET :keep)"
                if store.dialect == "sqlite"
                else "UPDATE reminders SET status = 'sent', sent_at = :now, updated_at = :now "
                "WHERE id IN (SELECT id FROM reminders WHERE status = 'planned' "
                "AND not_before <= :now AND expires_at > :now ORDER BY id DESC OFFSET :keep)"
            ),
            {"now": value, "keep": keep},
        ).rowcount


def main() -> int:
    p = parser(__doc__.splitlines()[0], patients=FULL)
    p.add_argument("--idle", type=float, default=20.0, help="idle seconds before reading RSS")
    p.add_argument("--backlog", type=int, default=2_000, help="due reminders left for run")
    args = p.parse_args()
    n = args.patients
    header(f"bench/memory.py: reminders run with {n:,} patients", args.postgres)
    with workdir("memory") as tmp, database(args.postgres, tmp) as url:
        cfg = config_dir(tmp)
        csv_path = tmp / "patients.csv"
        write_patients_csv(csv_path, n, start=datetime.now(UTC).date())
        store = Store(url)
        t0 = time.perf_counter()
        sync_patients(store, load_schedules(cfg), csv_path, datetime.now(UTC))
        sync_s = time.perf_counter() - t0
        with store.read() as tx:
            stored = tx.conn.execute(sa.text("SELECT count(*) FROM reminders")).scalar_one()
        due_generated = _backlog(store)
        settled = _settle(store, keep=args.backlog)
        analyze(store)
        due_at_start = _backlog(store)
        samples: list[tuple[float, int]] = []
        with fake_twilio() as (fake_url, _fake), smtp_sink() as smtp_port:
            env = {
                **os.environ,
                **twilio_env(fake_url),
                **smtp_env(smtp_port),
                "REMINDERS_CONFIG_DIR": str(cfg),
                "REMINDERS_DATABASE_URL": url,
                "REMINDERS_PATIENTS": str(csv_path),
                "REMINDERS_HTTP_PORT": str(free_port()),
                "REMINDERS_LOG_FORMAT": "json",
            }
            with (tmp / "run.out").open("w") as out, (tmp / "run.err").open("w") as err:
                started = time.perf_counter()
                service = subprocess.Popen(
                    [str(REPO / ".venv" / "bin" / "reminders"), "run"],
                    env=env,
                    stdout=out,
                    stderr=err,
                    cwd=tmp,
                )

                def sample() -> None:
                    kib = rss_kib(service.pid)
                    samples.append((time.perf_counter() - started, kib.get("VmRSS", 0)))

                ready = None
                drained = None
                deadline = time.perf_counter() + DRAIN_TIMEOUT
                while time.perf_counter() < deadline and service.poll() is None:
                    sample()
                    if ready is None and "service.started" in (tmp / "run.err").read_text():
                        ready = time.perf_counter() - started
                    if ready is not None and _backlog(store) == 0:
                        drained = time.perf_counter() - started
                        break
                    time.sleep(0.5)
                idle_until = time.perf_counter() + args.idle
                while time.perf_counter() < idle_until and service.poll() is None:
                    sample()
                    time.sleep(0.5)
                if service.poll() is not None:
                    print("  ERROR: reminders run exited; its stderr follows")
                    print((tmp / "run.err").read_text()[-3000:])
                    return 1
                final = rss_kib(service.pid)
                service.send_signal(signal.SIGTERM)
                code = service.wait(timeout=60)
        with store.read() as tx:
            by_status = dict(
                tx.conn.execute(
                    sa.text("SELECT status, count(*) FROM reminders GROUP BY status")
                ).all()
            )
        store.close()
    rss_mb, hwm_mb = final["VmRSS"] / 1024, final["VmHWM"] / 1024
    at_ready = max((kib for t, kib in samples if ready is not None and t <= ready), default=0)
    figure(
        f"run VmRSS, idle, {n:,} patients",
        f"{rss_mb:.0f} MB",
        f"<= {TARGET_MB:g} MB",
        rss_mb <= TARGET_MB,
    )
    figure(
        "run VmHWM (peak resident)", f"{hwm_mb:.0f} MB", f"<= {TARGET_MB:g} MB", hwm_mb <= TARGET_MB
    )
    figure("run VmRSS when started (after its sync)", f"{at_ready / 1024:.0f} MB", "-", None)
    sent = by_status.get("sent", 0) - settled
    note(
        f"{stored:,} reminders stored (pre-sync {sync_s:.1f} s); due when run started: "
        f"{due_at_start:,} (of {due_generated:,}, the rest marked sent); sent by run: {sent:,}; ready after {ready or float('nan'):.1f} s, "
        f"backlog drained after {drained if drained is not None else float('nan'):.1f} s, "
        f"then idle {args.idle:g} s; exit code {code}"
    )
    if drained is None:
        note(f"the due backlog had not drained within {DRAIN_TIMEOUT} s")
    trace = ", ".join(
        f"{t:.0f}s:{kib / 1024:.0f}" for t, kib in samples[:: max(len(samples) // 12, 1)]
    )
    note(f"VmRSS over time (s:MB): {trace}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
