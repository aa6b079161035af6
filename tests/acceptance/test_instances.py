"""Several ``reminders run`` instances on one PostgreSQL database share the work, exactly once.

Needs ``REMINDERS_TEST_POSTGRES_URL`` (``.ci/run`` sets it); each test gets a schema
of its own. The Twilio-compatible endpoint runs in its own process and records every
message it accepts, which is what the assertions read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from reminders.fake_twilio import read_record
from reminders.testing import zone_at
from tests.acceptance.conftest import REMINDERS, Cli
from tests.acceptance.test_crash import count_lines, fake_twilio, twilio_env

pytestmark = pytest.mark.postgres

#: Fictional 555-01xx numbers in 20 area codes: 2,000 distinct valid numbers.
AREAS = (
    201,
    973,
    908,
    732,
    609,
    856,
    862,
    551,
    848,
    640,
    212,
    718,
    917,
    646,
    347,
    929,
    516,
    631,
    914,
    845,
)


def numbers(count: int) -> list[str]:
    """``count`` distinct fictional numbers."""
    found = [f"+1{area}5550{n:03d}" for n in range(100, 200) for area in AREAS][:count]
    assert len(found) == count
    return found


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def enrol(cli: Cli, count: int) -> list[str]:
    """``count`` SMS-only patients whose day-1 reminder is due now (and for hours yet)."""
    now = datetime.now(UTC)
    zone = zone_at(now)
    surgery = now.astimezone(zone).date() - timedelta(days=1)
    phones = numbers(count)
    cli.write_patients(
        {
            "id": f"P-{i:05d}",
            "first_name": "Dana",
            "phone": phone,
            "surgery_date": surgery,
            "timezone": zone.key,
            "channels": ["sms"],
        }
        for i, phone in enumerate(phones)
    )
    return phones


@contextlib.contextmanager
def instances(
    cli: Cli, url: str, count: int, **env: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` ``reminders run`` processes on ``cli``'s database; stopped at the end."""
    procs = []
    for i in range(count):
        log = (cli.folder / f"run-{i}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [str(REMINDERS), "--config", str(cli.folder), "--database", cli.database, "run"],
                env={
                    **twilio_env(url),
                    "REMINDERS_HTTP_PORT": str(free_port()),
                    "REMINDERS_LOG_FORMAT": "json",
                    **env,
                },
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def wait_for(path: Path, lines: int, limit: float) -> int:
    """Wait until ``path`` has ``lines`` lines (or ``limit`` seconds pass); the count then."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        seen = count_lines(path)
        if seen >= lines:
            return seen
        time.sleep(0.2)
    return count_lines(path)


def stop(procs: list[subprocess.Popen[bytes]]) -> list[int | None]:
    """SIGTERM every live process; their exit codes."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    return [proc.wait(timeout=60) for proc in procs]


def senders(database: str) -> Counter[str]:
    """How many sends each instance (attempt owner) made."""
    engine = sa.create_engine(database)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT owner, count(*) FROM attempts WHERE outcome = 'sent' GROUP BY owner")
        ).all()
    engine.dispose()
    return Counter(dict(rows))


def statuses(database: str) -> Counter[str]:
    """Reminders by status."""
    engine = sa.create_engine(database)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, count(*) FROM reminders GROUP BY status")).all()
    engine.dispose()
    return Counter(dict(rows))


def test_three_instances_share_the_work_and_send_each_reminder_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """Three instances on one database: 2,000 due SMS each arrive once, and every instance sent some."""
    cli = Cli(tmp_path / "config")
    cli.database = postgres_url
    phones = enrol(cli, 2000)
    with (
        fake_twilio(tmp_path, "--latency-ms", "20") as (url, record),
        instances(cli, url, 3) as procs,
    ):
        delivered = wait_for(record, len(phones), limit=120)
        codes = stop(procs)
    assert codes == [0, 0, 0], [p.args for p in procs]
    assert delivered == len(phones)
    per_number = Counter(m.to for m in read_record(record))
    assert per_number == Counter(phones), "some number got none or more than one SMS"
    work = senders(postgres_url)
    assert len(work) == 3, f"not every instance sent: {work}"
    assert all(n > 0 for n in work.values())
    assert sum(work.values()) == len(phones)
    assert statuses(postgres_url)["sent"] == len(phones)


def test_killed_instance_is_taken_over_after_its_lease_lapses(
    tmp_path: Path, postgres_url: str
) -> None:
    """One instance killed with SIGKILL mid-batch: the others take over its leases, still exactly once."""
    cli = Cli(tmp_path / "config")
    cli.database = postgres_url
    phones = enrol(cli, 1500)
    lease = {"REMINDERS_LEASE_SECONDS": "5"}
    with (
        fake_twilio(tmp_path, "--latency-ms", "60") as (url, record),
        instances(cli, url, 3, **lease) as procs,
    ):
        assert wait_for(record, 200, limit=60) >= 200
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(timeout=10)
        at_kill = count_lines(record)
        delivered = wait_for(record, len(phones), limit=150)
        codes = stop(procs[1:])
    assert codes == [0, 0]
    assert at_kill < len(phones), "the kill came after the batch was done: nothing to take over"
    assert delivered == len(phones)
    per_number = Counter(m.to for m in read_record(record))
    assert per_number == Counter(phones), "some number got none or more than one SMS"
    assert statuses(postgres_url)["sent"] == len(phones)
