"""Acceptance: ``reminders tick`` killed with SIGKILL mid-batch, then run again, sends each SMS once.

The Twilio-compatible endpoint runs in its own process (``python -m
reminders.testing.twilio``) with latency, recording every message it accepts to a file;
``tick`` runs as a subprocess configured through the environment, as in production.
The tick time is two hours before the real clock, because the channel reads the
real clock for ``ValidityPeriod`` and reconciliation matches the endpoint's own
timestamps against the attempt's.
"""

from __future__ import annotations

import contextlib
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers

from reminders.testing import runner, zone_at
from reminders.testing.runner import TIMEOUT, clean_env
from reminders.testing.twilio import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    FakeMessage,
    read_record,
)

from .conftest import Cli, iso, tick_counts

#: The clinic's fictional sender number.
FROM = "+12015550100"
#: The day-1 milestone of the default protocol.
DAY1 = "crutches-toe-touch"
#: Fictional first names; each patient's SMS greets them by one.
NAMES = ("Dana", "Luis", "Priya", "Sam", "Aroha", "Mei", "Omar", "Ines", "Kofi", "Lena")
#: New Jersey area codes for fictional 555-01xx numbers.
AREAS = (201, 973, 908, 732, 609, 856)


def fictional_numbers(count: int) -> list[str]:
    """``count`` distinct valid E.164 numbers of the fictional 555-0101..0199 range."""
    numbers = [f"+1{area}5550{n}" for area in AREAS for n in range(101, 200)][:count]
    assert len(numbers) == count, f"only {len(numbers)} fictional numbers available"
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(n)) for n in numbers)
    return numbers


@dataclass(frozen=True)
class Scenario:
    """Patients whose day-1 SMS is due at ``at``, a tick time two hours before the real clock."""

    #: The first tick's ``--now``.
    at: datetime
    #: Patient id -> (phone, first name).
    patients: dict[str, tuple[str, str]]

    @classmethod
    def due(cls, count: int) -> Scenario:
        """``count`` SMS-only patients in a zone where ``at`` is early afternoon."""
        at = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
        return cls(
            at,
            {
                f"P-{i:04d}": (phone, NAMES[i % len(NAMES)])
                for i, phone in enumerate(fictional_numbers(count))
            },
        )

    def records(self) -> list[dict[str, Any]]:
        """The patients file: surgery yesterday (local), SMS only, early afternoon now."""
        zone = zone_at(self.at)
        local = self.at.astimezone(zone)
        assert 11 <= local.hour < 16, f"no zone has early afternoon at {self.at}"
        surgery = local.date() - timedelta(days=1)
        return [
            {
                "id": pid,
                "first_name": name,
                "last_name": "Example",
                "phone": phone,
                "surgery_date": surgery,
                "timezone": zone.key,
                "channels": ["sms"],
            }
            for pid, (phone, name) in self.patients.items()
        ]

    def assert_each_received_once(self, messages: Sequence[FakeMessage]) -> None:
        """Every patient's number got exactly one message, greeting them, from the clinic."""
        per_number = Counter(m.to for m in messages)
        twice = {n: c for n, c in per_number.items() if c > 1}
        assert not twice, f"numbers that received more than one SMS: {twice}"
        phones = {phone for phone, _ in self.patients.values()}
        assert set(per_number) == phones, f"missing: {sorted(phones - set(per_number))}"
        names = dict(self.patients.values())
        for m in messages:
            assert m.body.startswith(f"NJOI: Hi {names[m.to]}."), m.body
            assert m.from_ == FROM


@contextlib.contextmanager
def fake_twilio(tmp_path: Path, *options: str) -> Iterator[tuple[str, Path]]:
    """Run ``python -m reminders.testing.twilio`` with ``options``; yields its URL and record file.

    The process is stopped (SIGTERM, then SIGKILL) however the test ends.
    """
    record = tmp_path / "twilio-record.jsonl"
    with (tmp_path / "fake-twilio.err").open("w") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reminders.testing.twilio", "--record", str(record), *options],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=clean_env(),
        )
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 15)
            assert ready, "the fake Twilio printed no URL within 15 s"
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), f"unexpected first line {url!r}"
            yield url, record
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()


def twilio_env(url: str) -> dict[str, str]:
    """Settings for Twilio SMS at ``url``, unthrottled (added to a clean environment)."""
    return {
        "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM,
        "TWILIO_API_BASE_URL": url,
        "TWILIO_RATE_LIMIT": "0",
    }


def tick_args(at: datetime) -> tuple[str, ...]:
    """``tick --now AT --json``."""
    return ("tick", "--now", iso(at), "--json")


#: ``tick``'s exit code when reminders are left in doubt or retrying (faults, an outage).
STUCK = 3


def tick(cli: Cli, url: str, at: datetime) -> dict[str, Any]:
    """Run ``tick --now AT --json`` against the fake at ``url``; its counts.

    Exit 0 required, or 3 when the counts say reminders were left stuck (and only then).
    """
    result = runner.run(cli.folder, cli.database, *tick_args(at), env=twilio_env(url))
    assert "Traceback" not in result.stdout + result.stderr, str(result)
    counts = tick_counts(result)
    assert result.code == (STUCK if any(counts["stuck"].values()) else 0), str(result)
    return counts


def count_lines(path: Path) -> int:
    """Complete lines in ``path`` so far (0 before it exists)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_until_quiet(path: Path, quiet: float = 0.3, limit: float = 10.0) -> int:
    """Wait until ``path`` stops growing for ``quiet`` seconds; its line count then."""
    deadline = time.monotonic() + limit
    last, since = count_lines(path), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = count_lines(path)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    return last


def test_tick_killed_mid_batch_then_rerun_sends_every_sms_exactly_once(
    tmp_path: Path, make_cli: Any
) -> None:
    """After SIGKILL mid-batch and a rerun past the dead lease, each of 300 patients got the day-1 SMS exactly once."""
    scenario = Scenario.due(300)
    cli: Cli = make_cli("clinic")
    cli.write_patients(scenario.records())
    with fake_twilio(tmp_path, "--latency-ms", "30") as (url, record):
        with (tmp_path / "tick1.out").open("w") as out, (tmp_path / "tick1.err").open("w") as err:
            victim = runner.spawn(
                cli.folder,
                cli.database,
                *tick_args(scenario.at),
                env=twilio_env(url),
                stdout=out,
                stderr=err,
            )
            try:
                deadline = time.monotonic() + TIMEOUT
                while count_lines(record) < 40:
                    assert victim.poll() is None, "tick finished before it could be killed"
                    assert time.monotonic() < deadline, "no SMS reached the endpoint in time"
                    time.sleep(0.005)
                victim.send_signal(signal.SIGKILL)
            finally:
                victim.kill()
                code = victim.wait(timeout=10)
        assert code == -signal.SIGKILL
        # Requests in flight at the kill are still accepted by the endpoint: those
        # messages went out, but the dead process never recorded them.
        accepted = wait_until_quiet(record)
        assert 40 <= accepted < 300, f"{accepted} accepted: the kill was not mid-batch"

        after_crash = cli("status", "--json").json()["reminders"]
        recorded_sent = after_crash.get("sent", 0)
        assert after_crash.get("sending", 0) > 0, f"no lease left behind: {after_crash}"
        assert recorded_sent <= accepted

        # Before the dead process's leases (10 minutes) lapse, only the rest goes out.
        leased = after_crash["sending"]
        early = tick(cli, url, scenario.at + timedelta(minutes=5))
        assert (early["sent"], early["reconciled"]) == (300 - recorded_sent - leased, 0)
        assert cli("status", "--json").json()["reminders"]["sending"] == leased

        rerun = tick(cli, url, scenario.at + timedelta(minutes=11))
        messages = read_record(record)

    # The leased batch: accepted but unrecorded sends are found by listing, not sent again.
    assert rerun["reconciled"] == accepted - recorded_sent
    # Eight workers spend most of their time waiting out the 30 ms latency, so some
    # are mid-request at any instant (7 at the kill in practice).
    assert rerun["reconciled"] > 0
    assert rerun["sent"] + rerun["reconciled"] == leased
    assert (rerun["failed"], rerun["retry"], rerun["in_doubt"], rerun["expired"]) == (0, 0, 0, 0)
    assert len(messages) == 300
    scenario.assert_each_received_once(messages)

    status = cli("status", "--json").json()
    assert status["reminders"]["sent"] == 300
    assert status["reminders"].get("sending", 0) == 0
    assert status["failures"] == []
    sid_of = {m.to: m.sid for m in messages}
    # The last SMS accepted before the early tick were in flight at the kill: reconciled, not resent.
    for m in messages[accepted - 2 : accepted]:
        pid = next(p for p, (phone, _) in scenario.patients.items() if phone == m.to)
        [day1] = [r for r in cli.timeline(pid) if r["milestone"] == DAY1]
        assert (day1["status"], day1["provider_id"]) == ("sent", sid_of[m.to])
