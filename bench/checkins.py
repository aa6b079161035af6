"""Check-in replies: reply received -> alert notification handed to the provider, and
``inbound`` throughput.

SPEC section 11 (issue 12): p99 of reply received -> on-call notification handed to the
provider <= 2 s while ``run`` is serving; ``inbound`` throughput reported.

Latency: ``reminders run`` as a subprocess on the shipped schedules.yaml and templates,
``--replies`` patients (SMS only, fictional) whose day-4 pain check-in (18:00 local) is
due when the service starts (a time zone where it is 18:00-19:40 now, surgery 4 days
ago), SMS through the real twilio client to ``python -m reminders.testing.twilio``
(own process, rate limit off, ``--record``), email to an aiosmtpd sink (own process).
Once every check-in question has reached the fake, each patient answers "9" by a
signed ``POST /twilio/inbound`` (one every ``--interval`` ms, each from its own thread,
so a slow answer does not hold the next one back). Latency = the on-call SMS for that
patient's urgent alert landing in the fake's record file (stamped by this process,
polled every 2 ms) - the start of the POST.

Throughput: :func:`reminders.inbound.receive` called in this process for ``--replies``
answers to as many open check-ins (store prepared by the same sync and one tick through
memory channels, on a simulated clock), then ``reminders inbound`` as a command
(process start included) ``--commands`` times.

    .venv/bin/python -m bench.checkins [--postgres] [--replies N] [--interval MS]
                                       [--commands C]
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from bench.common import (
    AREA_CODES,
    REPO,
    RecordTail,
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
    smtp_env,
    twilio_env,
    workdir,
    write_patients_csv,
)
from bench.dispatch import _quiet_service_logs
from bench.lateness import _wait_started
from bench.memory import smtp_sink
from reminders.channels.memory import MemoryChannel
from reminders.config import load_schedules
from reminders.inbound import Text, receive
from reminders.store import Store
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher
from reminders.testing.twilio import DEFAULT_AUTH_TOKEN
from tests.twilio_webhooks import inbound_form, message_sid

TARGET_S = 2.0
#: The shipped schedules.yaml's on-call phone (texted for urgent alerts).
ON_CALL = "+12015550199"
#: fictional_phone gives this many distinct numbers.
MAX_PATIENTS = 100 * len(AREA_CODES)
#: The on-call notice names the patient: "... alert N for patient P-000012 ...".
PATIENT_IN_NOTICE = re.compile(r"patient (P-\d+)")
#: The throughput part's simulated clock: surgery on day 0, the day-4 18:00 check-in asked.
SURGERY = date(2026, 11, 20)
ENROLLED = datetime(2026, 11, 20, 12, tzinfo=UTC)
ASKED = datetime(2026, 11, 24, 23, 5, tzinfo=UTC)  # 18:05 in New York


class Arrivals(RecordTail):
    """On-call SMS stamped per patient as they land in the fake's record file, the rest counted."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        #: Questions, then safety replies: everything not to the on-call phone.
        self.to_patients = 0
        self.on_call: dict[str, float] = {}

    def seen(self, message: dict[str, Any], stamp: float) -> None:
        found = PATIENT_IN_NOTICE.search(message["body"])
        if message["to"] == ON_CALL and found:
            self.on_call.setdefault(found.group(1), stamp)
        else:
            self.to_patients += 1


def _zone() -> tuple[str, datetime]:
    """A zone where it is 18:00-19:40 now: the day-4 18:00 check-in is due, inside the
    shipped 09:00-20:00 send window, with time left to answer it."""
    now = datetime.now(UTC)
    for name in sorted(available_timezones()):
        if not name.startswith(("America/", "Europe/", "Asia/", "Australia/", "Pacific/")):
            continue
        local = now.astimezone(ZoneInfo(name))
        if local.hour >= 18 and (local.hour, local.minute) < (19, 40):
            return name, local
    raise RuntimeError("no time zone is between 18:00 and 19:40 right now")


def _patients_csv(path: Path, count: int, surgery: date, zone: str) -> list[tuple[str, str]]:
    """``count`` fictional SMS-only patients, all operated on ``surgery`` in ``zone``: (id, phone)."""
    write_patients_csv(
        path, count, start=surgery, email=False, zones=(zone,), surgery_date=surgery, seed=12
    )
    return [(f"P-{i:06d}", fictional_phone(i)) for i in range(count)]


def _stats(values: list[float]) -> str:
    return "/".join(f"{percentile(values, p):.3f}" for p in (50, 95, 99)) + f"/{max(values):.3f}"


# -- latency while run is serving ---------------------------------------------------------------


def latency(postgres: bool, n: int, interval: float) -> bool:
    """Replies to a running service; True when every alert's on-call SMS arrived."""
    zone, local = _zone()
    with workdir("checkins") as tmp, database(postgres, tmp) as url:
        cfg = config_dir(tmp)
        csv_path = tmp / "patients.csv"
        patients = _patients_csv(csv_path, n, local.date() - timedelta(days=4), zone)
        record = tmp / "accepted.jsonl"
        with (
            fake_twilio("--record", str(record)) as (fake_url, _fake),
            smtp_sink() as smtp_port,
        ):
            arrivals = Arrivals(record)
            arrivals.start()
            port = free_port()
            public = f"http://127.0.0.1:{port}"
            env = {
                **os.environ,
                **twilio_env(fake_url),
                **smtp_env(smtp_port),
                "REMINDERS_CONFIG_DIR": str(cfg),
                "REMINDERS_DATABASE_URL": url,
                "REMINDERS_PATIENTS": str(csv_path),
                "REMINDERS_HTTP_PORT": str(port),
                "REMINDERS_PUBLIC_URL": public,
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
                ready = _wait_started(tmp / "run.err", service, timeout=120)
                deadline = time.time() + 120
                while arrivals.to_patients < n and time.time() < deadline:
                    time.sleep(0.05)
                asked = time.time()
                posted, answered = _post_replies(public, patients, interval)
                deadline = time.time() + 60
                while len(arrivals.on_call) < n and time.time() < deadline:
                    time.sleep(0.05)
                time.sleep(0.5)
                service.send_signal(signal.SIGTERM)
                code = service.wait(timeout=60)
            arrivals.stop()
        store = Store(url)
        with store.read() as tx:
            alerts = tx.conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar_one()
            open_left = tx.conn.execute(
                sa.text("SELECT count(*) FROM check_ins WHERE status = 'open'")
            ).scalar_one()
        store.close()
        errors = (tmp / "run.err").read_text()
    late = [arrivals.on_call[p] - posted[p] for p, _ in patients if p in arrivals.on_call]
    if not late:
        print("  ERROR: no on-call SMS reached the fake; service stderr follows")
        print(errors[-3000:])
        return False
    p99 = percentile(late, 99)
    figure(
        "reply -> on-call SMS at the provider: p99",
        f"{p99:.3f} s",
        f"<= {TARGET_S:g} s",
        p99 <= TARGET_S,
    )
    figure(
        "p50 / p95 / max",
        f"{percentile(late, 50):.3f}/{percentile(late, 95):.3f}/{max(late):.3f}",
        "-",
        None,
    )
    webhook = list(answered.values())
    figure("POST /twilio/inbound answered: p50/p95/p99/max", _stats(webhook), "-", None)
    figure(
        "on-call SMS / alerts / replies",
        f"{len(late)}/{alerts}/{n}",
        "all, once",
        len(late) == n == alerts,
    )
    note(
        f"zone {zone} ({local:%H:%M} local at start), {n} patients, one reply every "
        f"{interval * 1000:.0f} ms; service ready after {ready - started:.1f} s, the {n} questions "
        f"at the fake {asked - ready:.1f} s later; check-ins still open {open_left}; "
        f"texts to patients (questions and safety replies) {arrivals.to_patients}; "
        f"exit code {code}"
    )
    if "Traceback" in errors or '"level": "error"' in errors:
        note("the service logged errors: " + errors[-1500:])
    return len(late) == n


def _post_replies(
    public: str, patients: list[tuple[str, str]], interval: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Each patient answers "9", one POST every ``interval`` s: (start, response time) by patient."""
    url = f"{public}/twilio/inbound"
    validator = RequestValidator(DEFAULT_AUTH_TOKEN)
    started: dict[str, float] = {}
    answered: dict[str, float] = {}

    def post(patient: str, phone: str, at: float) -> None:
        form = inbound_form(phone, "9", message_sid(f"bench-{patient}-{at}"))
        data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(  # noqa: S310  # our own service on 127.0.0.1
            url, data=data, headers={"X-Twilio-Signature": validator.compute_signature(url, form)}
        )
        time.sleep(max(at - time.time(), 0))
        started[patient] = time.time()
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()
            if response.status != 200:
                raise RuntimeError(f"/twilio/inbound answered {response.status}")
        answered[patient] = time.time() - started[patient]

    base = time.time() + 0.2
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [
            pool.submit(post, patient, phone, base + i * interval)
            for i, (patient, phone) in enumerate(patients)
        ]
        for future in futures:
            future.result()
    return started, answered


# -- inbound throughput ---------------------------------------------------------------------------


def throughput(postgres: bool, n: int, commands: int) -> bool:
    """``receive`` in process for ``n`` replies, then ``reminders inbound`` ``commands`` times."""
    with workdir("checkins-inbound") as tmp, database(postgres, tmp, "inbound") as url:
        cfg = config_dir(tmp)
        csv_path = tmp / "patients.csv"
        patients = _patients_csv(csv_path, n + commands, SURGERY, "America/New_York")
        schedules = load_schedules(cfg)
        _quiet_service_logs()
        store = Store(url)
        sync_patients(store, schedules, csv_path, ENROLLED)
        dispatcher = make_dispatcher(
            store,
            schedules,
            Templates(cfg / "templates"),
            {"sms": MemoryChannel("sms"), "email": MemoryChannel("email")},
            owner="bench",
            rng=random.Random(1),
        )
        dispatcher.tick(ASKED)
        with store.read() as tx:
            opened = tx.conn.execute(
                sa.text("SELECT count(*) FROM check_ins WHERE status = 'open'")
            ).scalar_one()
        at = ASKED + timedelta(minutes=5)
        levels: dict[str | None, int] = {}
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i, (_, phone) in enumerate(patients[:n]):
            handled = receive(store, schedules, Text(phone, "9", message_sid(f"in-{i}"), at))
            levels[handled.level] = levels.get(handled.level, 0) + 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        store.close()
        env = {
            **os.environ,
            "REMINDERS_CONFIG_DIR": str(cfg),
            "REMINDERS_DATABASE_URL": url,
            "REMINDERS_LOG_FORMAT": "json",
        }
        runs: list[float] = []
        failed = 0
        for i, (_, phone) in enumerate(patients[n:]):
            t0 = time.perf_counter()
            result = subprocess.run(
                [
                    str(REPO / ".venv" / "bin" / "reminders"),
                    "inbound",
                    "--from",
                    phone,
                    "--body",
                    "9",
                    "--sid",
                    message_sid(f"cli-{i}"),
                    "--now",
                    at.isoformat(),
                    "--json",
                ],
                env=env,
                capture_output=True,
                text=True,
                cwd=tmp,
                check=False,
            )
            runs.append(time.perf_counter() - t0)
            if result.returncode != 0 or json.loads(result.stdout or "{}").get("level") != "urgent":
                failed += 1
    urgent = levels.get("urgent", 0)
    figure("receive(): replies per second", f"{n / wall:,.0f}/s", "-", None)
    figure(
        "receive(): wall / CPU per reply",
        f"{wall / n * 1000:.2f}/{cpu / n * 1000:.2f} ms",
        "-",
        None,
    )
    if runs:
        figure(
            "`reminders inbound` command: median / max",
            f"{percentile(runs, 50):.2f}/{max(runs):.2f} s",
            "-",
            None,
        )
    figure(
        "urgent alerts / replies (in process, command)",
        f"{urgent}/{n}, {commands - failed}/{commands}",
        "all",
        urgent == n and failed == 0,
    )
    note(
        f"{opened:,} check-ins open before the replies ({n + commands:,} patients, simulated "
        f"clock {at:%Y-%m-%d %H:%M} UTC); in process: {n:,} replies in {wall:.2f} s wall, "
        f"{cpu:.2f} s CPU (each reply: one write transaction, an alert, 2 notices and a safety "
        f"reply queued); command: {len(runs)} runs, each a new process"
    )
    return urgent == n and failed == 0


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--replies", type=int, default=200, help=f"patients answering (<= {MAX_PATIENTS})"
    )
    p.add_argument("--interval", type=float, default=75, help="ms between replies (default 75)")
    p.add_argument("--commands", type=int, default=20, help="`reminders inbound` runs (default 20)")
    args = p.parse_args()
    n = args.replies
    if not 1 <= n <= MAX_PATIENTS - args.commands:
        p.error(f"--replies: 1 to {MAX_PATIENTS - args.commands} (distinct fictional numbers)")
    header(f'bench/checkins.py: {n} replies "9" to open pain check-ins', args.postgres)
    load = os.getloadavg()
    ok = latency(args.postgres, n, args.interval / 1000)
    ok = throughput(args.postgres, n, args.commands) and ok
    after = os.getloadavg()
    note(
        f"load average (1 min) {load[0]:.2f} before, {after[0]:.2f} after "
        f"(other processes share the machine)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
