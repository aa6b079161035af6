"""Shared helpers for the benchmarks: fictional patient files and a machine description."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _area_codes() -> tuple[str, ...]:
    """The US area codes in which 555-0100 is a valid number (381 with phonenumbers 9.0):
    with 100 numbers each (555-0100..0199, the block reserved for fiction), 100,000
    patients share a number by two or three, as families do, not by a hundred (ten area
    codes made 421 opted-out numbers stop 42,100 patients in the dashboard benchmark)."""
    import phonenumbers  # bench set-up only

    def us(area: int) -> bool:
        number = phonenumbers.parse(f"+1{area}5550100")
        return phonenumbers.is_valid_number(number) and (
            phonenumbers.region_code_for_number(number) == "US"
        )

    return tuple(str(area) for area in range(200, 1000) if us(area))


AREA_CODES = _area_codes()
ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Pacific/Auckland",
)


def machine() -> str:
    """One line describing where a figure was measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


def fictional_phone(i: int) -> str:
    """A distinct fictional US number per i (555-01xx block, varied area and exchange-free form)."""
    area = AREA_CODES[i % len(AREA_CODES)]
    return f"+1{area}5550{100 + (i // len(AREA_CODES)) % 100:03d}"


def write_patients_csv(
    path: Path,
    count: int,
    *,
    start: date,
    seed: int = 1,
    email: bool = True,
    zones: Sequence[str] = ZONES,
    surgery_date: date | None = None,
) -> None:
    """``count`` fictional patients with surgery dates spread over the year before ``start``+30 days.

    ``email=False`` leaves the email column empty (SMS only); ``surgery_date`` gives every
    patient the same one; ``zones`` narrows the time zones drawn from.
    """
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "id",
                "first_name",
                "last_name",
                "phone",
                "email",
                "surgery_date",
                "timezone",
                "language",
                "attributes",
            ]
        )
        for i in range(count):
            surgery = start - timedelta(days=rng.randint(-30, 200))
            writer.writerow(
                [
                    f"P-{i:06d}",
                    rng.choice(("Dana", "Luis", "Priya", "Sam", "Aroha", "Kim", "Jo")),
                    "Example",
                    fictional_phone(i),
                    f"patient{i}@example.com" if email else "",
                    (surgery_date or surgery).isoformat(),
                    rng.choice(zones),
                    rng.choice(("en", "es")),
                    "goal=sport" if i % 3 == 0 else "",
                ]
            )


def config_dir(tmp: Path) -> Path:
    """A copy of the shipped schedules.yaml and templates in ``tmp``."""
    shutil.copy(REPO / "schedules.yaml", tmp / "schedules.yaml")
    shutil.copytree(REPO / "templates", tmp / "templates")
    return tmp


# -- databases ------------------------------------------------------------------------------

#: The PostgreSQL server of ``--postgres`` runs (a fresh schema per run, dropped at the end).
POSTGRES_URL = os.environ.get(
    "REMINDERS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextlib.contextmanager
def database(postgres: bool, tmp: Path, name: str = "reminders") -> Iterator[str]:
    """A URL to an empty database: a SQLite file in ``tmp``, or a PostgreSQL schema of its own."""
    if not postgres:
        yield f"sqlite:///{tmp / (name + '.db')}"
        return
    import sqlalchemy as sa

    schema = f"bench_{name}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.engine.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def analyze(store: Any) -> None:
    """On PostgreSQL, ANALYZE after a bulk load: what autovacuum does within a minute in
    production (the benchmark server runs with autovacuum off, so without it the planner
    has no statistics at all)."""
    if store.dialect == "postgresql":
        import sqlalchemy as sa

        with store.write() as tx:
            tx.conn.execute(sa.text("ANALYZE"))


def ran_through(store: Any) -> None:
    """Write every late enrollment's history out as reminder rows: a store that has run
    through these recoveries holds a row for each milestone that fell due (sent, or expired
    in an outage), where a first sync keeps them as one record per shared plan."""
    with store.write() as tx:
        ids = [e.patient_id for e in tx.views.enrollments()]
        tx.late.materialize(ids, tx.enrollments.insert_plans)


def backend(postgres: bool) -> str:
    """``SQLite`` or ``PostgreSQL <version>``, for the output."""
    if not postgres:
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar()
    finally:
        engine.dispose()
    return f"PostgreSQL {str(version).split()[0]}"


# -- command lines and output -----------------------------------------------------------------


def parser(description: str, *, patients: int | None = None) -> argparse.ArgumentParser:
    """The options every benchmark shares: ``--postgres`` and (when it applies) ``--patients``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--postgres", action="store_true", help=f"run on PostgreSQL ({POSTGRES_URL})")
    if patients is not None:
        p.add_argument(
            "--patients", type=int, default=patients, help=f"patients (default {patients:,})"
        )
    return p


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary folder, removed afterwards (kept when BENCH_KEEP is set)."""
    path = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    try:
        yield path
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"(kept {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


def revision() -> str:
    """The commit measured, with a note when the package has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "reminders"],  # noqa: S607
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + uncommitted changes in reminders/" if dirty else "")


def header(title: str, postgres: bool | None = None) -> None:
    """The benchmark's title line, the machine line and the code revision."""
    where = f" [{backend(postgres)}]" if postgres is not None else ""
    print(f"== {title}{where}")
    print(f"machine: {machine()}")
    print(f"code: {revision()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "MISS"


def figure(label: str, value: str, target: str, ok: bool | None) -> None:
    """One result line: the figure beside its SPEC target and PASS/MISS (or "info")."""
    word = "info" if ok is None else verdict(ok)
    print(f"  {label:<46} {value:>14}   target {target:<14} {word}")


def note(text: str) -> None:
    """An explanatory line under the figures."""
    print(f"  - {text}")


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of ``values`` by nearest rank (p50 of 1..100 is 50, p99 is 99)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return ordered[min(rank, len(ordered)) - 1]


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB, from /proc/<pid>/status."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(rest.split()[0])
    return found


# -- peers -------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fake_twilio(*extra: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``python -m reminders.testing.twilio`` in its own process (its CPU is not ours): (url, process)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reminders.testing.twilio", *extra],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None  # noqa: S101
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"fake_twilio did not start (printed {url!r})")
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def smtp_env(port: int) -> dict[str, str]:
    """Environment sending email to a local SMTP sink on ``port``, plain, rate limit off."""
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_SECURITY": "none",
        "SMTP_RATE_LIMIT": "0",
        "EMAIL_FROM": "Clinic <clinic@example.com>",
    }


class RecordTail:
    """Tails the fake Twilio's ``--record`` file in a thread, stamping each message with
    this process's clock as it lands; subclasses say what to keep in :meth:`seen`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tail, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def seen(self, message: dict[str, Any], stamp: float) -> None:
        """One accepted message (the record's JSON object) and when it landed."""
        raise NotImplementedError

    def _tail(self) -> None:
        while not self.path.exists() and not self._stop.is_set():
            time.sleep(0.002)
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as handle:
            pending = ""
            while True:
                chunk = handle.readline()
                if not chunk:
                    if self._stop.is_set():
                        return
                    time.sleep(0.002)
                    continue
                stamp = time.time()
                pending += chunk
                if pending.endswith("\n"):
                    message, pending = json.loads(pending), ""
                    self.seen(message, stamp)


def twilio_env(url: str) -> dict[str, str]:
    """Environment pointing the real twilio client at a fake endpoint, rate limit off."""
    from reminders.testing.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

    return {
        "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": "+12015550100",
        "TWILIO_API_BASE_URL": url,
        "TWILIO_RATE_LIMIT": "0",
    }
