"""Lateness while running: how long after its due time each reminder reaches the provider.

SPEC section 10: p99 lateness <= 2 s while running.

``reminders run`` runs as a subprocess on a generated configuration: the shipped protocols
plus a ``bench-lateness`` protocol whose milestones are all on day 0, each at its own
second (``send_time: "HH:MM:SS"``), over ``--seconds`` seconds, for ``--patients``
patients (SMS only), so reminders fall due continuously. SMS go through the real twilio
client to ``python -m reminders.testing.twilio`` (its own process, rate limit off). This
process timestamps each message as it lands in the fake's ``--record`` file (polled every
2 ms); lateness = that arrival time - the reminder's ``due_at``. The service's own
``sent_at - due_at`` (recorded after Twilio answered) is shown beside it.

``--enrolled E`` (default 100,000) more patients on the shipped protocol (SMS only,
surgery dates spread over the past 200 days and the next 30) share the store, as in
production: the service's queries then run against millions of stored reminders. They
are synced by this process before ``run`` starts, and what the generated history leaves
due right now is marked sent (a running service would have sent it). ``--enrolled 0``
measures the dispatch path on an almost empty store.

``--burst B`` adds B patients on a ``bench-burst`` protocol whose one milestone falls due
for all of them at the same second, half-way through (as a clinic-wide 10:00 does);
their lateness is reported on its own lines.

The send window is widened to 00:00-23:59 (the bench milestones' times must fit in it),
in a time zone where the run does not cross midnight.

    .venv/bin/python -m bench.lateness [--postgres] [--patients N] [--seconds S]
                                       [--enrolled E] [--burst B]
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import yaml

from bench.common import (
    REPO,
    RecordTail,
    analyze,
    config_dir,
    database,
    fake_twilio,
    fictional_phone,
    figure,
    free_port,
    header,
    note,
    parser,
    percentile,
    twilio_env,
    workdir,
    write_patients_csv,
)
from reminders.config import load_schedules
from reminders.store import Store
from reminders.sync import sync_patients

TARGET_S = 2.0
#: Seconds between the service being started and the first due time.
LEAD = 20
#: Seconds per 100,000 enrolled patients to allow for this process's own sync before that.
PRESYNC = {"sqlite": 45, "postgresql": 90}
#: Zones tried in turn: the first where the whole run stays on one local day is used.
ZONES = ("UTC", "America/New_York", "Asia/Tokyo", "Europe/Paris", "Pacific/Auckland")
BENCH = ("bench-lateness", "bench-burst")


class ArrivalClock(RecordTail):
    """Stamps each message with this process's clock as it lands in the fake's record file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.arrivals: dict[int, float] = {}
        self.duplicates = 0

    def seen(self, message: dict[str, Any], stamp: float) -> None:
        query = parse_qs(urlsplit(message["status_callback"] or "").query)
        reminder = int(query["reminder"][0])
        if reminder in self.arrivals:
            self.duplicates += 1
        else:
            self.arrivals[reminder] = stamp


def _zone(span: float) -> tuple[str, datetime]:
    """A zone where now .. now + ``span`` seconds stays on one local day."""
    now = datetime.now(UTC)
    for name in ZONES:
        local = now.astimezone(ZoneInfo(name))
        if (local + timedelta(seconds=span)).date() == local.date() and local.hour >= 1:
            return name, local
    raise RuntimeError("no candidate zone keeps the run on one local day")


def _schedules(cfg: Path, first: datetime, seconds: int) -> None:
    """The shipped schedules.yaml plus ``bench-lateness`` (one day-0 milestone per second
    from ``first``, local time) and ``bench-burst`` (one milestone half-way through)."""
    doc = yaml.safe_load((REPO / "schedules.yaml").read_text())
    doc["defaults"]["send_window"] = "00:00-23:59"

    def milestone(mid: str, at: datetime) -> dict[str, object]:
        return {
            "id": mid,
            "at": "day 0",
            "send_time": at.strftime("%H:%M:%S"),
            "template": "protect-hamstring",
            "channels": ["sms"],
            "expires_after": "1 hour",
        }

    doc["protocols"]["bench-lateness"] = {
        "title": "Benchmark: one milestone per second",
        "version": 1,
        "milestones": [
            milestone(f"second-{i:04d}", first + timedelta(seconds=i)) for i in range(seconds)
        ],
    }
    doc["protocols"]["bench-burst"] = {
        "title": "Benchmark: one burst",
        "version": 1,
        "milestones": [milestone("burst", first + timedelta(seconds=seconds // 2))],
    }
    (cfg / "schedules.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _patients(
    path: Path, enrolled: int, groups: dict[str, int], first: datetime, zone: str
) -> None:
    """``enrolled`` background patients (shipped protocol), then each bench group's."""
    write_patients_csv(path, enrolled, start=datetime.now(UTC).date(), email=False)
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    rows[0].append("protocol")
    for row in rows[1:]:
        row.append("")
    index = enrolled
    for protocol, count in groups.items():
        for i in range(index, index + count):
            record = dict.fromkeys(rows[0], "")
            record.update(
                id=f"P-{i:06d}",
                first_name="Sam",
                last_name="Example",
                phone=fictional_phone(i),
                surgery_date=first.date().isoformat(),
                timezone=zone,
                language="en",
                protocol=protocol,
            )
            rows.append([record[column] for column in rows[0]])
        index += count
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def _settle(store: Store) -> int:
    """Mark every reminder due now as sent: a running service would have sent it."""
    now = datetime.now(UTC)
    value: object = now.strftime("%Y-%m-%d %H:%M:%S.%f") if store.dialect == "sqlite" else now
    with store.write() as tx:
        return int(
            tx.conn.execute(
                sa.text(
                    "UPDATE reminders SET status = 'sent', sent_at = :now, updated_at = :now "
                    "WHERE status = 'planned' AND not_before <= :now"
                ),
                {"now": value},
            ).rowcount
        )


def main() -> int:
    p = parser(__doc__.splitlines()[0], patients=30)
    p.add_argument("--seconds", type=int, default=90, help="seconds over which reminders fall due")
    p.add_argument(
        "--enrolled", type=int, default=100_000, help="background patients (default 100,000)"
    )
    p.add_argument("--burst", type=int, default=0, help="patients due at one same second")
    args = p.parse_args()
    n, seconds, burst, enrolled = args.patients, args.seconds, args.burst, args.enrolled
    title = f"{n} patients x {seconds} due seconds = {n * seconds:,} SMS"
    if burst:
        title += f", plus {burst:,} due at one second"
    header(f"bench/lateness.py: {title}, {enrolled:,} more enrolled", args.postgres)
    presync = PRESYNC["postgresql" if args.postgres else "sqlite"] * enrolled / 100_000
    lead = LEAD + presync
    zone, local_now = _zone(lead + seconds + 120)
    first = (local_now + timedelta(seconds=lead)).replace(microsecond=0)
    with workdir("lateness") as tmp, database(args.postgres, tmp) as url:
        cfg = config_dir(tmp)
        _schedules(cfg, first, seconds)
        csv_path = tmp / "patients.csv"
        _patients(csv_path, enrolled, {BENCH[0]: n, BENCH[1]: burst}, first, zone)
        # The store as a running service keeps it: everything planned, nothing overdue.
        store = Store(url)
        t0 = time.perf_counter()
        sync_patients(store, load_schedules(cfg), csv_path, datetime.now(UTC))
        presync_s = time.perf_counter() - t0
        settled = _settle(store)
        analyze(store)
        with store.read() as tx:
            stored = tx.conn.execute(sa.text("SELECT count(*) FROM reminders")).scalar_one()
        left = first.timestamp() - time.time()
        if left < LEAD / 2:
            print(
                f"  ERROR: the pre-sync took {presync_s:.0f} s, {left:.0f} s before the first due"
            )
            return 1
        record = tmp / "accepted.jsonl"
        with fake_twilio("--record", str(record)) as (fake_url, _fake):
            clock = ArrivalClock(record)
            clock.start()
            port = free_port()
            env = {
                **os.environ,
                **twilio_env(fake_url),
                "REMINDERS_CONFIG_DIR": str(cfg),
                "REMINDERS_DATABASE_URL": url,
                "REMINDERS_PATIENTS": str(csv_path),
                "REMINDERS_HTTP_PORT": str(port),
                # Status callbacks carry ?reminder=<id>: how arrivals are matched to reminders.
                "REMINDERS_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "REMINDERS_LOG_FORMAT": "json",
            }
            started = time.time()
            with (tmp / "run.out").open("w") as out, (tmp / "run.err").open("w") as err:
                service = subprocess.Popen(
                    [str(REPO / ".venv" / "bin" / "reminders"), "run"],
                    env=env,
                    stdout=out,
                    stderr=err,
                    cwd=tmp,
                )
                ready = _wait_started(tmp / "run.err", service, timeout=left)
                last_due = first + timedelta(seconds=seconds - 1)
                deadline = last_due.timestamp() + 60
                bench_ids = _bench_ids(store)
                while time.time() < deadline and service.poll() is None:
                    if bench_ids <= clock.arrivals.keys():
                        break
                    time.sleep(0.2)
                time.sleep(1)
                service.send_signal(signal.SIGTERM)
                code = service.wait(timeout=60)
            clock.stop()
        with store.read() as tx:
            entries = tx.conn.execute(
                sa.select(
                    sa.column("id"),
                    sa.column("protocol"),
                    sa.column("due_at", type_=_utc_type()),
                    sa.column("sent_at", type_=_utc_type()),
                )
                .select_from(sa.table("reminders"))
                .where(sa.column("protocol").in_(BENCH))
            ).all()
        store.close()
        errors = (tmp / "run.err").read_text()
    late: list[float] = []
    late_db: list[float] = []
    late_burst: list[float] = []
    missing = 0
    for e in entries:
        arrived = clock.arrivals.get(e.id)
        if arrived is None:
            missing += 1
            continue
        (late_burst if e.protocol == BENCH[1] else late).append(arrived - e.due_at.timestamp())
        if e.sent_at is not None and e.protocol == BENCH[0]:
            late_db.append((e.sent_at - e.due_at).total_seconds())
    if not late:
        print("  ERROR: no message reached the fake; service stderr follows")
        print(errors[-3000:])
        return 1
    p99 = percentile(late, 99)
    figure(
        "lateness p99 (arrival at the fake - due)",
        f"{p99:.3f} s",
        f"<= {TARGET_S:g} s",
        p99 <= TARGET_S,
    )
    figure("lateness p50", f"{percentile(late, 50):.3f} s", "-", None)
    figure("lateness max", f"{max(late):.3f} s", "-", None)
    figure("service's own sent_at - due_at: p99", f"{percentile(late_db, 99):.3f} s", "-", None)
    figure("service's own sent_at - due_at: p50", f"{percentile(late_db, 50):.3f} s", "-", None)
    if late_burst:
        figure(
            f"burst of {len(late_burst):,} at one second: p99",
            f"{percentile(late_burst, 99):.3f} s",
            f"<= {TARGET_S:g} s",
            percentile(late_burst, 99) <= TARGET_S,
        )
        figure(
            "burst: p50 / max",
            f"{percentile(late_burst, 50):.2f}/{max(late_burst):.2f} s",
            "-",
            None,
        )
        both = late + late_burst
        figure(
            "all reminders together: p99",
            f"{percentile(both, 99):.3f} s",
            f"<= {TARGET_S:g} s",
            percentile(both, 99) <= TARGET_S,
        )
    figure(
        "messages accepted / reminders",
        f"{len(late) + len(late_burst):,}/{len(entries):,}",
        "all, once",
        missing == 0 and clock.duplicates == 0,
    )
    note(
        f"zone {zone}, first due {first:%H:%M:%S} local, {n} reminders due per second; "
        f"store: {stored:,} reminders ({enrolled:,} background patients synced in "
        f"{presync_s:.1f} s, {settled:,} due-now marked sent); service ready after "
        f"{ready - started:.1f} s; exit code {code}; duplicates at the fake {clock.duplicates}"
    )
    if "Traceback" in errors or '"level": "error"' in errors:
        note("the service logged errors: " + errors[-1500:])
    return 0 if missing == 0 else 1


def _utc_type() -> sa.types.TypeEngine[datetime]:
    from reminders.store import UTCDateTime

    return UTCDateTime()


def _bench_ids(store: Store) -> set[int]:
    with store.read() as tx:
        return {
            int(row[0])
            for row in tx.conn.execute(
                sa.text(
                    "SELECT id FROM reminders WHERE protocol IN ('bench-lateness', 'bench-burst')"
                )
            )
        }


def _wait_started(log: Path, service: subprocess.Popen[bytes], timeout: float) -> float:
    """Wait for the service's ``service.started`` log line; returns when it came."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if "service.started" in log.read_text():
            return time.time()
        if service.poll() is not None:
            raise RuntimeError(f"reminders run exited early:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"reminders run did not start within {timeout:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
