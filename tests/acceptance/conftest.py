"""Helpers for acceptance tests: run the installed ``reminders`` executable as a user would.

Every test gets its own folder with a copy of the shipped ``schedules.yaml`` and
``templates/``, a patients file the test writes, and its own SQLite database. Nothing
in the repository is touched and no provider is configured, so delivery is the
console dry run.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from reminders.testing import runner
from reminders.testing.runner import Result
from reminders.testing.smtp import SmtpRecorder
from reminders.testing.twilio import FakeTwilio

#: The repository root, where the shipped configuration lives.
REPO = Path(__file__).resolve().parents[2]


class Cli:
    """One configuration folder and database, and a way to run commands against them."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "schedules.yaml", folder / "schedules.yaml")
        shutil.copytree(REPO / "templates", folder / "templates")
        #: The configuration folder passed as ``--config``.
        self.folder = folder
        #: The database passed as ``--database``.
        self.database = f"sqlite:///{folder / 'r.db'}"
        #: The patients file read by default.
        self.patients_file = folder / "patients.yaml"

    def __call__(
        self, *args: str, expect: int | None = 0, env: Mapping[str, str] | None = None
    ) -> Result:
        """Run ``reminders --config ... --database ... *args``; check the exit code."""
        result = runner.run(self.folder, self.database, *args, env=env)
        assert "Traceback" not in result.stdout + result.stderr, str(result)
        if expect is not None:
            assert result.code == expect, str(result)
        return result

    def write_patients(self, records: Iterable[Mapping[str, Any]]) -> Path:
        """Write ``records`` as the YAML patients file beside schedules.yaml."""
        self.patients_file.write_text(
            yaml.safe_dump({"patients": [dict(r) for r in records]}, sort_keys=False),
            encoding="utf-8",
        )
        return self.patients_file

    def schedules(self) -> dict[str, Any]:
        """This folder's schedules.yaml, read with plain YAML."""
        doc: dict[str, Any] = yaml.safe_load(
            (self.folder / "schedules.yaml").read_text(encoding="utf-8")
        )
        return doc

    def timeline(self, patient: str) -> list[dict[str, Any]]:
        """``timeline PATIENT --json`` as a list of rows."""
        rows: list[dict[str, Any]] = self("timeline", patient, "--json").json()
        return rows


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A fresh configuration folder with the sample patients, and its database."""
    runner = Cli(tmp_path)
    runner.write_patients(sample_patients())
    return runner


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    """A Twilio-compatible endpoint on a free loopback port."""
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def smtp() -> Iterator[SmtpRecorder]:
    """A recording SMTP server on a free loopback port."""
    with SmtpRecorder() as server:
        yield server


@pytest.fixture
def make_cli(tmp_path: Path) -> Callable[[str], Cli]:
    """Factory for extra, independent configuration folders under the test's tmp_path."""
    return lambda name: Cli(tmp_path / name)


def sample_patients() -> list[dict[str, Any]]:
    """Five active fictional patients across time zones, languages and protocols."""
    return [
        {
            "id": "P-1001",
            "first_name": "Dana",
            "last_name": "Reyes",
            "phone": "+12015550123",
            "email": "dana.reyes@example.com",
            "surgery_date": date(2026, 11, 20),
            "protocol": "proximal-hamstring-repair",
            "timezone": "America/New_York",
            "language": "en",
            "channels": ["sms", "email"],
            "attributes": {"repair": "acute", "goal": "sport"},
        },
        {
            "id": "P-1002",
            "first_name": "Luis",
            "last_name": "Ortega",
            "phone": "(973) 555-0142",
            "email": "luis.ortega@example.com",
            "surgery_date": date(2026, 11, 24),
            "timezone": "America/Chicago",
            "language": "es",
            "attributes": {"repair": "chronic"},
        },
        {
            "id": "P-1003",
            "first_name": "Priya",
            "last_name": "Natarajan",
            "email": "priya.n@example.com",
            "surgery_date": date(2026, 11, 18),
            "timezone": "Asia/Kolkata",
            "channels": ["email"],
        },
        {
            "id": "P-1004",
            "first_name": "Sam",
            "last_name": "Whitford",
            "phone": "+12015550178",
            "surgery_date": date(2026, 11, 23),
            "protocol": "proximal-hamstring-nonoperative",
            "timezone": "America/Los_Angeles",
            "channels": ["sms"],
        },
        {
            "id": "P-1005",
            "first_name": "Aroha",
            "last_name": "Ngata",
            "phone": "+12015550191",
            "email": "aroha.ngata@example.com",
            "surgery_date": date(2026, 11, 16),
            "timezone": "Pacific/Auckland",
            "attributes": {"goal": "sport"},
        },
    ]


# -- reading the protocol from schedules.yaml, independently of the package -----------------

_DURATION = re.compile(r"^\s*(?:(day|week)s?\s+(\d+)|(\d+)\s+(day|week)s?)\s*$")


def days_of(text: str) -> int:
    """``day 1``, ``week 6``, ``3 days``, ``2 weeks`` -> days."""
    match = _DURATION.match(str(text))
    assert match, f"unexpected duration {text!r} in schedules.yaml"
    unit = match.group(1) or match.group(4)
    number = int(match.group(2) or match.group(3))
    return number * (7 if unit == "week" else 1)


def expiry_of(text: str) -> timedelta:
    """``1 day``, ``2 weeks``, ``12 hours``, ``30 minutes`` -> a timedelta."""
    number, unit = str(text).split()
    unit = unit.rstrip("s")
    seconds = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}[unit]
    return timedelta(seconds=int(number) * seconds)


@dataclass(frozen=True)
class Occurrence:
    """One expected occurrence of a milestone, read from schedules.yaml."""

    #: Milestone id.
    milestone: str
    #: 1-based occurrence number.
    occurrence: int
    #: Days after the surgery date.
    offset_days: int
    #: Local send time.
    send_time: time
    #: How long after the due time it may still go out.
    expires_after: timedelta
    #: Channels the milestone uses.
    channels: tuple[str, ...]

    def due_local(self, surgery: date, zone: ZoneInfo) -> datetime:
        """The local due time for a patient with this surgery date and zone."""
        return datetime.combine(surgery + timedelta(days=self.offset_days), self.send_time, zone)

    def due_utc(self, surgery: date, zone: ZoneInfo) -> datetime:
        """The due time in UTC."""
        return self.due_local(surgery, zone).astimezone(UTC)


def expected_plan(
    schedules: Mapping[str, Any], protocol: str, attributes: Mapping[str, str] | None = None
) -> list[Occurrence]:
    """Every occurrence the protocol plans for a patient with ``attributes``."""
    defaults = schedules["defaults"]
    result = []
    for step in schedules["protocols"][protocol]["milestones"]:
        condition = step.get("when") or {}
        attrs = attributes or {}
        if any(
            str(attrs.get(k)) not in ([str(x) for x in v] if isinstance(v, list) else [str(v)])
            for k, v in condition.items()
        ):
            continue
        first = days_of(step["at"])
        offsets = [first]
        if "repeat" in step:
            every = days_of(step["repeat"]["every"])
            until = days_of(step["repeat"]["until"])
            offsets = list(range(first, until + 1, every))
        send_time = time.fromisoformat(str(step.get("send_time", defaults["send_time"])))
        expires = expiry_of(step.get("expires_after", defaults["expires_after"]))
        channels = tuple(step.get("channels", defaults["channels"]))
        result.extend(
            Occurrence(step["id"], n, offset, send_time, expires, channels)
            for n, offset in enumerate(offsets, start=1)
        )
    return result


def parse_utc(text: str) -> datetime:
    """A ``...Z`` timestamp from the CLI's JSON."""
    assert text.endswith("Z"), f"{text!r} is not UTC ISO ending in Z"
    return datetime.fromisoformat(text)


def iso(moment: datetime) -> str:
    """A UTC ``--now`` argument."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tick_counts(result: Result) -> dict[str, Any]:
    """The counts object of ``tick --json``.

    Read as the last top-level JSON object on stdout, so a dry-run console delivery
    printed before it does not hide the outcome; whether stdout is *only* JSON is
    asserted by its own test.
    """
    at = result.stdout.rfind("\n{")
    text = result.stdout[at + 1 :] if at >= 0 else result.stdout
    try:
        counts: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON counts on stdout\n{result}")
    return counts
