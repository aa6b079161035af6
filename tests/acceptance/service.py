"""Helpers for running ``reminders run`` as a subprocess against local SMTP and Twilio peers.

A test writes a small configuration of its own (:func:`write_config`): the shipped
templates, a one-protocol ``schedules.yaml`` whose day-0 milestones are due at real
instants a few seconds away (``send_time`` with seconds, in a zone where those
instants are around noon, so no due time crosses local midnight), and a handful of
fictional patients. :class:`RunningService` starts the installed ``reminders``
executable on a free port with the production environment variables pointing at an
in-process :class:`~reminders.testing.twilio.FakeTwilio` and
:class:`~reminders.testing.smtp.SmtpRecorder`, and signs Twilio webhooks the way Twilio does.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import yaml
from twilio.request_validator import RequestValidator

from reminders.testing import runner, zone_at
from reminders.testing.peer import PORT_ATTEMPTS, PORT_IN_USE, free_port
from reminders.testing.runner import Result
from reminders.testing.smtp import SmtpRecorder
from reminders.testing.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio

from .conftest import REPO

T = TypeVar("T")

#: The clinic's fictional sender number (also its phone).
FROM = "+12015550100"
CLINIC_NAME = "Example Recovery Clinic"
#: The clinic phone as HELP answers it (national format).
CLINIC_PHONE_DISPLAY = "(201) 555-0100"
COORDINATOR = "coordinator@example.com"
EMAIL_FROM = "Example Recovery Clinic <reminders@clinic.example.com>"
SECRET = "service-test-secret-key"
#: Milestone ids of the test protocol.
FIRST = "first-message"
SECOND = "second-message"
NEXT_DAY = "next-day"
#: How long the service may take to answer /healthz after it is started.
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Patient:
    """One fictional patient of a test run."""

    #: Patient id.
    id: str
    #: First name (each message greets the patient by it).
    first_name: str
    #: E.164 number, or None for email only.
    phone: str | None
    #: Email address, or None for SMS only.
    email: str | None

    def record(self, zone: ZoneInfo, surgery: date) -> dict[str, Any]:
        """This patient as a patients-file record."""
        channels = [c for c, a in (("sms", self.phone), ("email", self.email)) if a]
        record: dict[str, Any] = {
            "id": self.id,
            "first_name": self.first_name,
            "last_name": "Example",
            "surgery_date": surgery,
            "timezone": zone.key,
            "language": "en",
            "channels": channels,
        }
        if self.phone:
            record["phone"] = self.phone
        if self.email:
            record["email"] = self.email
        return record

    def identifiers(self) -> list[str]:
        """Every way this patient's phone number or email address could be written out."""
        found: list[str] = []
        if self.phone:
            digits = self.phone.removeprefix("+1")
            area, exchange, line = digits[:3], digits[3:6], digits[6:]
            found += [
                self.phone,
                digits,
                f"{exchange}-{line}",
                f"{exchange}{line}",
                f"({area}) {exchange}-{line}",
                f"{area}-{exchange}-{line}",
                f"{area}.{exchange}.{line}",
            ]
        if self.email:
            found += [self.email, self.email.split("@")[0]]
        return found


#: Three fictional patients on both channels.
PATIENTS = (
    Patient("P-2001", "Dana", "+12015550123", "dana.reyes@example.com"),
    Patient("P-2002", "Luis", "+19735550142", "luis.ortega@example.com"),
    Patient("P-2003", "Aroha", "+12015550191", "aroha.ngata@example.com"),
)


def sms_only_patients(count: int) -> list[Patient]:
    """``count`` SMS-only patients with distinct fictional 555-01xx numbers."""
    numbers = [
        f"+1{area}5550{n}" for area in (201, 973, 908, 732, 609, 856) for n in range(101, 200)
    ]
    assert count <= len(numbers), f"only {len(numbers)} fictional numbers available"
    return [Patient(f"P-{i:04d}", "Kofi", numbers[i], None) for i in range(count)]


def zone_near_noon(moment: datetime) -> ZoneInfo:
    """The zone whose local time at ``moment`` is closest to 12:30."""
    return zone_at(moment, hour=12.5)


def whole_second_after(moment: datetime) -> datetime:
    """The first whole second at or after ``moment`` (send times have one-second resolution)."""
    floor = moment.replace(microsecond=0)
    return floor if floor == moment else floor + timedelta(seconds=1)


@dataclass(frozen=True)
class Plan:
    """When the test protocol's milestones are due, in real time."""

    #: The patients' (and the clinic's) zone, where the due times are around noon.
    zone: ZoneInfo
    #: The surgery date (day 0) in that zone.
    surgery: date
    #: Due time of the day-0 ``first-message`` (SMS and email).
    first_due: datetime
    #: Due time of the day-0 ``second-message``, if the protocol has one.
    second_due: datetime | None


def write_config(
    folder: Path,
    patients: Sequence[Patient],
    *,
    first_in: float,
    second_in: float | None = None,
) -> Plan:
    """Write schedules.yaml, templates/ and patients.yaml in ``folder``.

    ``first-message`` is due ``first_in`` seconds from now (negative: already due),
    ``second-message`` ``second_in`` seconds from now if given; ``next-day`` is due
    tomorrow at noon and stays pending for the whole test.
    """
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    first_due = whole_second_after(now + timedelta(seconds=first_in))
    second_due = (
        whole_second_after(now + timedelta(seconds=second_in)) if second_in is not None else None
    )
    zone = zone_near_noon(now)
    surgery = first_due.astimezone(zone).date()
    for due in (first_due, second_due):
        if due is not None:
            local = due.astimezone(zone)
            assert local.date() == surgery, f"{local} would cross local midnight"
            assert 6 <= local.hour < 20, f"{local} is not around noon in {zone.key}"

    def day0(milestone: str, due: datetime, template: str) -> dict[str, Any]:
        return {
            "id": milestone,
            "at": "day 0",
            "send_time": due.astimezone(zone).strftime("%H:%M:%S"),
            "template": template,
            "expires_after": "2 hours",
        }

    milestones = [day0(FIRST, first_due, "crutches-toe-touch")]
    if second_due is not None:
        milestones.append(day0(SECOND, second_due, "protect-hamstring"))
    milestones.append({"id": NEXT_DAY, "at": "day 1", "template": "brace-removal"})
    schedules = {
        "clinic": {
            "name": CLINIC_NAME,
            "short_name": "ERC",
            "phone": FROM,
            "coordinator_email": COORDINATOR,
            "timezone": zone.key,
            "country": "US",
        },
        "defaults": {
            "protocol": "service-test",
            "send_time": "12:00",
            "send_window": "00:00-23:59",
            "expires_after": "1 day",
            "languages": ["en"],
            "channels": ["sms", "email"],
        },
        "protocols": {
            "service-test": {
                "title": "Service test protocol",
                "version": 1,
                "milestones": milestones,
            }
        },
    }
    (folder / "schedules.yaml").write_text(yaml.safe_dump(schedules, sort_keys=False), "utf-8")
    shutil.copytree(REPO / "templates", folder / "templates", dirs_exist_ok=True)
    (folder / "patients.yaml").write_text(
        yaml.safe_dump({"patients": [p.record(zone, surgery) for p in patients]}, sort_keys=False),
        "utf-8",
    )
    return Plan(zone, surgery, first_due, second_due)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.05) -> T:
    """Call ``probe`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)


class _PortTaken(Exception):
    """``run`` exited because its HTTP port was taken after :func:`free_port` picked it."""


class RunningService:
    """``reminders --config DIR --database sqlite:///DIR/r.db run`` as a subprocess."""

    def __init__(self, folder: Path, twilio: FakeTwilio, smtp: SmtpRecorder) -> None:
        self.folder = folder
        self.database = f"sqlite:///{folder / 'r.db'}"
        self.env = {
            "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM,
            "TWILIO_API_BASE_URL": twilio.url,
            "TWILIO_RATE_LIMIT": "0",
            "SMTP_HOST": smtp.host,
            "SMTP_PORT": str(smtp.port),
            "SMTP_SECURITY": "none",
            "EMAIL_FROM": EMAIL_FROM,
            "REMINDERS_SECRET_KEY": SECRET,
            "REMINDERS_LOG_FORMAT": "json",
        }
        self.http = httpx.Client(timeout=10)
        self._listen_on(free_port())
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self._files: list[IO[bytes]] = []

    # -- process ---------------------------------------------------------------------------

    def _listen_on(self, port: int) -> None:
        """Serve HTTP on ``port`` from the next start on."""
        self.port = port
        #: What Twilio is told to call; webhook signatures are computed over it.
        self.public_url = f"http://127.0.0.1:{port}"
        self.env |= {"REMINDERS_HTTP_PORT": str(port), "REMINDERS_PUBLIC_URL": self.public_url}
        self.http.base_url = httpx.URL(self.public_url)

    def start(self) -> None:
        """Start ``run`` with stdout and stderr captured to files of this run."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        out = (self.folder / f"run{self.runs}.out").open("wb")
        err = (self.folder / f"run{self.runs}.err").open("wb")
        self._files += [out, err]
        self.proc = runner.spawn(
            self.folder, self.database, "run", env=self.env, stdout=out, stderr=err
        )

    def wait_healthy(self) -> None:
        """Wait until /healthz answers 200; fail early if the process died.

        If another process took the free port between picking it and ``run`` binding it,
        ``run`` exits saying so: it is started again on another port (exactly once holds
        across restarts, so whatever the first start sent is not sent again).
        """
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                wait_for("/healthz", self._healthy, START_TIMEOUT)
                return
            except _PortTaken:
                assert attempt < PORT_ATTEMPTS, f"no free port after {attempt} tries"
                self._listen_on(free_port())
                self.start()

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            last = (self.folder / f"run{self.runs}.err").read_text("utf-8", errors="replace")
            if self.proc.returncode == 1 and PORT_IN_USE in last.lower():
                raise _PortTaken
            raise AssertionError(f"run exited with {self.proc.returncode}\n{self.output()}")
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, timeout: float = 30.0) -> tuple[int, float]:
        """SIGTERM, then wait; returns the exit code and how long the stop took."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"run did not exit within {timeout} s of SIGTERM") from None
        return code, time.monotonic() - began

    def kill(self) -> None:
        """Make sure the process is gone (the fixture finalizer)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def close(self) -> None:
        """Stop the process and release files and connections."""
        self.kill()
        self.http.close()
        for f in self._files:
            f.close()

    def output(self) -> str:
        """Everything every run printed so far, stdout and stderr of each."""
        for f in self._files:
            f.flush()
        parts = []
        for n in range(1, self.runs + 1):
            for stream in ("out", "err"):
                path = self.folder / f"run{n}.{stream}"
                parts.append(path.read_text("utf-8", errors="replace"))
        return "\n".join(parts)

    def stderr(self) -> str:
        """Standard error (the JSON log) of every run so far."""
        for f in self._files:
            f.flush()
        return "\n".join(
            (self.folder / f"run{n}.err").read_text("utf-8", errors="replace")
            for n in range(1, self.runs + 1)
        )

    # -- the command line beside it -----------------------------------------------------

    def cli(self, *args: str) -> Result:
        """Run another ``reminders`` command on the same folder and database (no providers)."""
        result = runner.run(self.folder, self.database, *args)
        assert result.code == 0, str(result)
        return result

    def timeline(self, patient: str) -> list[dict[str, Any]]:
        """``timeline PATIENT --json``."""
        rows: list[dict[str, Any]] = self.cli("timeline", patient, "--json").json()
        return rows

    def statuses(self, patient: str) -> dict[tuple[str, str], str]:
        """(milestone, channel) -> status for one patient."""
        return {(r["milestone"], r["channel"]): r["status"] for r in self.timeline(patient)}

    # -- HTTP ----------------------------------------------------------------------------

    def signature(self, path: str, params: Mapping[str, str]) -> str:
        """The ``X-Twilio-Signature`` Twilio would send for a POST of ``params`` to ``path``."""
        validator = RequestValidator(DEFAULT_AUTH_TOKEN)
        return str(validator.compute_signature(self.public_url + path, dict(params)))

    def twilio_post(
        self, path: str, params: Mapping[str, str], signature: str | None = ""
    ) -> httpx.Response:
        """POST a webhook; ``signature=""`` signs it correctly, None sends no signature."""
        headers = {}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature or self.signature(path, params)
        return self.http.post(path, data=dict(params), headers=headers)
