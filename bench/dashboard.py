"""Dashboard pages: server time of the worklist and of patient pages at 100,000 patients.

SPEC section 10: p95 <= 150 ms with 100,000 patients and 10,000 alerts. The store is built
by a sync of N patients (surgery dates over the past 200 days, as ``bench.plan``), then given
a history in SQL: every reminder due before now is marked sent with one attempt (or, for 1%
of patients, failed with Twilio 21211), 500 numbers opted out, 300 reminders waiting to
retry, 50 attempts in doubt, and, where the schema has them, 10,000 answered check-ins each
with an alert (a third of them open, a third of the open ones urgent). The app is served by
uvicorn on loopback with the dashboard on, signed in as a coordinator; an ASGI wrapper
times each request inside the server (from the request's arrival to its last byte), which
is the figure reported; the client's own time over loopback is printed beside it.

    .venv/bin/python -m bench.dashboard [--postgres] [--patients 100000] [--runs 200]
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from bench.common import (
    analyze,
    config_dir,
    database,
    figure,
    free_port,
    header,
    note,
    parser,
    percentile,
    ran_through,
    workdir,
    write_patients_csv,
)
from reminders.accounts import hash_password
from reminders.compose import Composer
from reminders.config import load_schedules
from reminders.http import DashboardSettings, WebContext, create_app
from reminders.metrics import Metrics
from reminders.store import Store
from reminders.sync import sync_patients
from reminders.templates import Templates

TARGET_MS = 150.0
ALERTS = 10_000
USER = "bench@example.com"
PASSWORD = "correct horse battery staple"  # noqa: S105  # a throwaway account of the benchmark
SECRET = "bench-secret-key"  # noqa: S105  # the benchmark's own throwaway key


class Timed:
    """ASGI wrapper: the time of each request inside the server, per path prefix."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: dict[str, list[float]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        await self.app(scope, receive, send)
        path = scope["path"]
        key = "patient" if path.startswith("/app/patients/") else path
        self.times.setdefault(key, []).append((time.perf_counter() - start) * 1000)


def history(store: Store, now: datetime, rng: random.Random, patients: int) -> dict[str, int]:
    """What a running clinic has by now: sends, failures, opt-outs, retries, doubts, alerts."""
    stamp = now if store.dialect == "postgresql" else now.replace(tzinfo=None)
    counts: dict[str, int] = {}
    with store.write() as tx:
        c = tx.conn
        counts["sent"] = c.execute(
            sa.text(
                "UPDATE reminders SET status = 'sent', sent_at = due_at, attempts = 1, "
                "provider_id = 'SM' || id WHERE due_at < :now AND status IN ('planned', 'expired')"
            ),
            {"now": stamp},
        ).rowcount
        c.execute(
            sa.text(
                "INSERT INTO attempts (reminder_id, number, owner, started_at, finished_at, "
                "outcome, provider_id) SELECT id, 1, 'bench', sent_at, sent_at, 'sent', provider_id "
                "FROM reminders WHERE status = 'sent'"
            )
        )
        failing = [f"P-{i:06d}" for i in rng.sample(range(patients), patients // 100)]
        for pid in failing:
            c.execute(
                sa.text(
                    "UPDATE reminders SET status = 'failed', error_code = '21211', "
                    "error = 'Twilio 21211: invalid To phone number', updated_at = :now "
                    "WHERE id = (SELECT max(id) FROM reminders WHERE patient_id = :p "
                    "AND channel = 'sms' AND status = 'sent')"
                ),
                {"p": pid, "now": stamp},
            )
        counts["failed"] = len(failing)
        phones = c.execute(
            sa.text("SELECT phone FROM enrollments WHERE phone IS NOT NULL LIMIT 500")
        ).scalars()
        c.execute(
            sa.text(
                "INSERT INTO opt_outs (channel, address, opted_out, source, changed_at) "
                "VALUES ('sms', :a, :o, 'sms stop', :now)"
            ),
            [{"a": a, "o": True, "now": stamp} for a in set(phones)],
        )
        counts["retrying"] = c.execute(
            sa.text(
                "UPDATE reminders SET attempts = 1, error = 'Twilio answered 503' WHERE id IN "
                "(SELECT id FROM reminders WHERE status = 'planned' ORDER BY not_before LIMIT 300)"
            )
        ).rowcount
        c.execute(
            sa.text(
                "UPDATE attempts SET outcome = 'in_doubt' WHERE id IN "
                "(SELECT id FROM attempts ORDER BY id DESC LIMIT 50)"
            )
        )
        if sa.inspect(c).has_table("alerts"):
            counts["alerts"] = alerts(c, stamp, rng, patients)
        c.execute(
            sa.text(
                "INSERT INTO users (email, role, password_hash, created_at) VALUES (:e, 'coordinator', :h, :now)"
            ),
            {"e": USER, "h": hash_password(PASSWORD), "now": stamp},
        )
    return counts


def alerts(c: sa.Connection, stamp: Any, rng: random.Random, patients: int) -> int:
    """10,000 answered pain check-ins of past reminders, each with an alert."""
    rows = c.execute(
        sa.text(
            "SELECT id, patient_id, protocol, milestone, occurrence, sent_at FROM reminders "
            "WHERE status = 'sent' AND channel = 'sms' ORDER BY id LIMIT :n"
        ),
        {"n": ALERTS},
    ).all()
    for i, r in enumerate(rows):
        check_in = c.execute(
            sa.text(
                "INSERT INTO check_ins (patient_id, protocol, milestone, occurrence, reminder_id, "
                "kind, measure, asked_at, closes_at, status, value, answered_at, via, reprompted) "
                "VALUES (:p, :pr, :m, :o, :r, 'scale', 'pain', :at, :at, 'answered', :v, :at, "
                "'sms', :f) RETURNING id"
            ),
            {
                "p": r.patient_id,
                "pr": r.protocol,
                "m": r.milestone,
                "o": r.occurrence,
                "r": r.id,
                "at": r.sent_at,
                "v": rng.randint(6, 10),
                "f": False,
            },
        ).scalar_one()
        status = ("open", "acknowledged", "resolved")[i % 3]
        c.execute(
            sa.text(
                "INSERT INTO alerts (patient_id, check_in_id, source, level, reason, words, "
                "raised_at, status, acknowledged_at, acknowledged_by) VALUES (:p, :c, 'answer', "
                ":l, 'threshold:urgent:>=8', 'pain 8 or more', :at, :s, :ack, :by)"
            ),
            {
                "p": r.patient_id,
                "c": check_in,
                "l": "urgent" if i % 9 == 0 else "review",
                "at": r.sent_at,
                "s": status,
                "ack": r.sent_at if status != "open" else None,
                "by": "kim@example.com" if status != "open" else None,
            },
        )
    return len(rows)


def configuration(schedules: Any) -> dict[str, Any]:
    """How this version's WebContext takes the configuration (the check-ins changed it)."""
    names = {f.name for f in dataclasses.fields(WebContext)}
    if "schedules" in names:
        return {"schedules": lambda: schedules}
    return {"clinic": lambda: schedules.clinic, "forward": lambda _inbound: None}


def expect(response: httpx.Response, status: int) -> None:
    """Stop the benchmark unless ``response`` has ``status``."""
    if response.status_code != status:
        raise SystemExit(f"{response.request.url}: {response.status_code}, not {status}")


def main() -> int:
    p = parser(__doc__.splitlines()[0], patients=100_000)
    p.add_argument("--runs", type=int, default=200, help="timed requests per page kind")
    args = p.parse_args()
    header("bench/dashboard.py: worklist and patient pages", args.postgres)
    rng = random.Random(7)
    with workdir("dashboard") as tmp, database(args.postgres, tmp) as url:
        cfg = config_dir(tmp)
        csv_path = tmp / "patients.csv"
        now = datetime.now(UTC)
        write_patients_csv(csv_path, args.patients, start=now.date())
        store = Store(url)
        try:
            schedules = load_schedules(cfg)
            t0 = time.perf_counter()
            sync_patients(store, schedules, csv_path, now)
            ran_through(store)  # what a first sync marks expired was sent, below
            counts = history(store, now, rng, args.patients)
            analyze(store)
            build_s = time.perf_counter() - t0
            with store.read() as tx:
                stored = tx.conn.execute(sa.text("SELECT count(*) FROM reminders")).scalar_one()
            composer = Composer(schedules, Templates(cfg / "templates"))
            context = WebContext(
                store=store,
                twilio_auth_token=None,
                public_url=None,
                secret_key=SECRET,
                metrics=Metrics(store, lambda: datetime.now(UTC)),
                running=lambda: True,
                **configuration(schedules),
                dashboard=DashboardSettings(
                    secret=SECRET, composer=lambda: composer, secure_cookies=False
                ),
            )
            timed = Timed(create_app(context))
            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(
                    timed,
                    host="127.0.0.1",
                    port=port,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                )
            )
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            client_ms: dict[str, list[float]] = {"worklist": [], "patient": []}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                form = client.get("/app/signin").text
                token = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
                signed = client.post(
                    "/app/signin", data={"csrf": token, "email": USER, "password": PASSWORD}
                )
                expect(signed, 303)
                for _ in range(5):  # warm-up
                    client.get("/app/worklist")
                    client.get("/app/patients/P-000001")
                timed.times.clear()
                for _ in range(args.runs):
                    start = time.perf_counter()
                    expect(client.get("/app/worklist"), 200)
                    client_ms["worklist"].append((time.perf_counter() - start) * 1000)
                    pid = f"P-{rng.randrange(args.patients):06d}"
                    start = time.perf_counter()
                    expect(client.get(f"/app/patients/{pid}"), 200)
                    client_ms["patient"].append((time.perf_counter() - start) * 1000)
            server.should_exit = True
            thread.join(timeout=10)
        finally:
            store.close()
    for label, key in (("worklist", "/app/worklist"), ("patient page", "patient")):
        server_ms = timed.times[key]
        p95 = percentile(server_ms, 95)
        figure(
            f"{label}: server p95 of {len(server_ms)}",
            f"{p95:.1f} ms",
            f"<= {TARGET_MS:g} ms",
            p95 <= TARGET_MS,
        )
        figure(f"{label}: server p50", f"{percentile(server_ms, 50):.1f} ms", "-", None)
        mine = client_ms["worklist" if key == "/app/worklist" else "patient"]
        figure(
            f"{label}: client p50 / p95 over loopback",
            f"{percentile(mine, 50):.0f}/{percentile(mine, 95):.0f} ms",
            "-",
            None,
        )
    note(
        f"{args.patients:,} patients, {stored:,} reminders ({counts.get('sent', 0):,} sent), "
        f"{counts.get('alerts', 0):,} alerts, {counts['failed']:,} failed deliveries, "
        f"{counts['retrying']} retrying; store built in {build_s:.1f} s; patient pages of "
        f"random patients; every page view writes its audit record"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
