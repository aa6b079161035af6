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
from typing import Any

import pytest
import sqlalchemy as sa

from reminders.testing import runner, zone_at
from reminders.testing.peer import free_port
from reminders.testing.twilio import read_record
from tests.acceptance.conftest import Cli
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
            runner.spawn(
                cli.folder,
                cli.database,
                "run",
                env={
                    **twilio_env(url),
                    "REMINDERS_HTTP_PORT": str(free_port()),
                    "REMINDERS_LOG_FORMAT": "json",
                    **env,
                },
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


def owner_of(proc: subprocess.Popen[bytes]) -> str:
    """The lease owner name a ``reminders run`` process uses (host:pid)."""
    return f"{socket.gethostname()}:{proc.pid}"


def rows(database: str, sql: str, **params: str) -> list[sa.Row[Any]]:
    """The rows of one read-only query."""
    engine = sa.create_engine(database)
    with engine.connect() as conn:
        found = list(conn.execute(sa.text(sql), params).all())
    engine.dispose()
    return found


def in_flight(database: str, owner: str) -> tuple[int, int]:
    """``owner``'s reminders leased in ``sending``, and its attempts not finished."""
    [(leased,)] = rows(
        database,
        "SELECT count(*) FROM reminders WHERE status = 'sending' AND lease_owner = :owner",
        owner=owner,
    )
    [(attempts,)] = rows(
        database,
        "SELECT count(*) FROM attempts WHERE owner = :owner AND outcome IN ('pending', 'in_doubt')",
        owner=owner,
    )
    return int(leased), int(attempts)


def wait_until_settled(database: str, count: int, limit: float) -> Counter[str]:
    """Wait until ``count`` reminders are sent and no attempt is unresolved; statuses then."""
    deadline = time.monotonic() + limit
    while True:
        [(open_attempts,)] = rows(
            database, "SELECT count(*) FROM attempts WHERE outcome IN ('pending', 'in_doubt')"
        )
        found = statuses(database)
        if (found["sent"] == count and not open_attempts) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_killed_instance_is_taken_over_after_its_lease_lapses(
    tmp_path: Path, postgres_url: str
) -> None:
    """One instance killed with SIGKILL mid-send: the others reconcile the sends it left in flight, and every number gets one SMS.

    Catches: survivors that resend a dead instance's leases blindly (without marking
    its unfinished attempts in doubt and asking the endpoint): its in-flight attempts
    stay unresolved and a message it got accepted is sent twice.
    """
    cli = Cli(tmp_path / "config")
    cli.database = postgres_url
    phones = enrol(cli, 1500)
    lease = {"REMINDERS_LEASE_SECONDS": "5"}
    with (
        fake_twilio(tmp_path, "--latency-ms", "60") as (url, record),
        instances(cli, url, 3, **lease) as procs,
    ):
        assert wait_for(record, 200, limit=60) >= 200
        dead = owner_of(procs[0])
        # Kill it while it has an attempt in flight (each takes the endpoint's 60 ms).
        deadline = time.monotonic() + 30
        while in_flight(postgres_url, dead)[1] == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(timeout=10)
        # Its leases last 5 s: what it held when it died is still there to see.
        leased_at_death, attempts_at_death = in_flight(postgres_url, dead)
        at_kill = count_lines(record)
        settled = wait_until_settled(postgres_url, len(phones), limit=150)
        codes = stop(procs[1:])
    assert codes == [0, 0]
    assert at_kill < len(phones), "the kill came after the batch was done: nothing to take over"
    assert leased_at_death > 0, "the killed instance held no lease when it died"
    assert attempts_at_death > 0, "the killed instance had no send in flight when it died"
    assert settled["sent"] == len(phones), settled
    messages = read_record(record)
    per_number = Counter(m.to for m in messages)
    assert per_number == Counter(phones), "some number got none or more than one SMS"

    # Every send the dead instance left in flight was reconciled by a survivor: found at
    # the endpoint (recorded with that message's SID) or absent (then sent once by a survivor).
    attempts = rows(
        postgres_url,
        "SELECT a.id, a.reminder_id, a.owner, a.outcome, a.provider_id, r.provider_id AS final"
        " FROM attempts a JOIN reminders r ON r.id = a.reminder_id ORDER BY a.id",
    )
    survivors = {owner_of(p) for p in procs[1:]}
    assert {a.owner for a in attempts} <= {dead, *survivors}
    doubted = [a for a in attempts if a.owner == dead and a.outcome != "sent"]
    assert len(doubted) == attempts_at_death
    assert {a.outcome for a in doubted} <= {"in_doubt:sent", "in_doubt:absent"}, doubted
    sids = {m.sid for m in messages}
    later = Counter(a.reminder_id for a in attempts if a.owner != dead)
    for a in doubted:
        if a.outcome == "in_doubt:sent":
            assert a.provider_id in sids
            assert a.final == a.provider_id
            assert later[a.reminder_id] == 0, "found at the endpoint, yet sent again"
        else:
            [resend] = [b for b in attempts if b.reminder_id == a.reminder_id and b.id != a.id]
            assert (resend.owner in survivors, resend.outcome) == (True, "sent")
            assert a.final == resend.provider_id
    reconciled = rows(
        postgres_url,
        "SELECT reminder_id FROM audit_events WHERE kind = 'reminder.reconciled' ORDER BY id",
    )
    assert sorted(r.reminder_id for r in reconciled) == sorted(a.reminder_id for a in doubted)
