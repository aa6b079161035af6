"""Status during an outage: what ``reminders status`` costs with 100,000 patients.

No SPEC target; measured because ``status`` lists every reminder that needs a coordinator
(in doubt, retrying, expired after failed tries, failed) and would otherwise scan the
reminders table by status. The store is built by a sync of N patients (surgery dates over
the past 200 days and the next 30, as ``bench/plan.py``); then an outage is simulated in SQL:
``--stuck`` reminders due by now are marked as a refused connection left them (attempts 1,
code ``connection-refused``, planned again), a tenth of those get an in-doubt attempt, and
a tenth as many expired rows and a fiftieth as many failed ones get attempts and codes.

Timed, median of ``--runs`` after one warm-up: the counts by state, the first page of 50,
all of them (``status --json``), and the existing counts by status for comparison; then the
installed ``reminders status`` and ``status --json`` end to end (one run each, start-up
included). When the partial index ``ix_reminders_attention`` exists it is dropped afterwards
and the queries timed again, to show what it saves.

    .venv/bin/python -m bench.status [--postgres] [--patients N] [--stuck N] [--runs R]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import (
    analyze,
    config_dir,
    database,
    figure,
    header,
    note,
    parser,
    ran_through,
    workdir,
    write_patients_csv,
)
from reminders.config import load_schedules
from reminders.store import Store
from reminders.sync import sync_patients
from reminders.testing.runner import run

INDEX = "ix_reminders_attention"


def _simulate_outage(store: Store, now: datetime, stuck: int) -> dict[str, int]:
    """Mark reminders as an outage leaves them (SQL, as the dispatcher would have); returns counts."""
    params = {"now": now if store.dialect == "postgresql" else now.replace(tzinfo=None)}
    later = params["now"] + timedelta(minutes=5)
    with store.write() as tx:
        c = tx.conn

        def ids(status: str, limit: int, due: bool) -> list[int]:
            where = "status = :status" + (" AND not_before <= :now" if due else "")
            query = f"SELECT id FROM reminders WHERE {where} ORDER BY id LIMIT :n"  # noqa: S608
            rows = c.execute(sa.text(query), {**params, "status": status, "n": limit})
            return [r.id for r in rows]

        retrying = ids("planned", stuck, due=True)
        expired = ids("expired", stuck // 10, due=False)
        failed = ids("expired", stuck // 10 + stuck // 50, due=False)[stuck // 10 :]
        c.execute(
            sa.text(
                "UPDATE reminders SET attempts = 1, error_code = 'connection-refused', "
                "error = 'Twilio endpoint refused the connection', not_before = :later "
                "WHERE id = :id"
            ),
            [{"id": i, "later": later} for i in retrying],
        )
        c.execute(
            sa.text(
                "UPDATE reminders SET attempts = 1, error_code = 'connection-refused', "
                "error = 'Twilio endpoint refused the connection' WHERE id = :id"
            ),
            [{"id": i} for i in expired],
        )
        c.execute(
            sa.text(
                "UPDATE reminders SET status = 'failed', attempts = 1, error_code = '21211', "
                "error = 'Twilio 21211: invalid To phone number' WHERE id = :id"
            ),
            [{"id": i} for i in failed],
        )
        doubtful = retrying[: len(retrying) // 10]
        c.execute(
            sa.text(
                "INSERT INTO attempts (reminder_id, number, owner, started_at, outcome) "
                "VALUES (:id, 1, 'bench', :now, 'in_doubt')"
            ),
            [{"id": i, **params} for i in doubtful],
        )
    return {
        "in doubt": len(doubtful),
        "retrying": len(retrying) - len(doubtful),
        "expired": len(expired),
        "failed": len(failed),
    }


def _median_ms(call: Callable[[], Any], runs: int) -> float:
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _queries(store: Store, runs: int, label: str) -> None:
    def read(query: Callable[[Any], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with store.read() as tx:
                return query(tx.views)

        return call

    for name, query in (
        ("counts by state", lambda views: views.attention_counts()),
        ("first page of 50 (and the counts)", lambda views: views.attention(limit=50)),
        ("all of them (status --json)", lambda views: views.attention()),
        ("counts by status (summary, for comparison)", lambda views: views.summary(failures=0)),
    ):
        figure(f"{name}, {label}", f"{_median_ms(read(query), runs):,.1f} ms", "-", None)


def _command(cfg: Path, url: str, *args: str) -> float:
    start = time.perf_counter()
    result = run(cfg, url, "status", *args, timeout=600)
    elapsed = time.perf_counter() - start
    if result.code != 0:
        raise RuntimeError(str(result))
    return elapsed


def main() -> int:
    p = parser(__doc__.splitlines()[0], patients=100_000)
    p.add_argument("--stuck", type=int, default=20_000, help="reminders retrying (default 20,000)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per query (default 5)")
    args = p.parse_args()
    header("bench/status.py: what needs a coordinator, during an outage", args.postgres)
    with workdir("status") as tmp, database(args.postgres, tmp) as url:
        cfg = config_dir(tmp)
        csv_path = tmp / "patients.csv"
        now = datetime.now(UTC).replace(microsecond=0)
        write_patients_csv(csv_path, args.patients, start=now.date())
        store = Store(url)
        try:
            t0 = time.perf_counter()
            sync_patients(store, load_schedules(cfg), csv_path, now)
            ran_through(store)  # the expired history as rows, some of them tried below
            build_s = time.perf_counter() - t0
            marked = _simulate_outage(store, now, args.stuck)
            analyze(store)
            with store.read() as tx:
                stored = tx.conn.execute(sa.text("SELECT count(*) FROM reminders")).scalar_one()
                indexed = INDEX in {i["name"] for i in sa.inspect(tx.conn).get_indexes("reminders")}
            label = "with the partial index" if indexed else "without an index"
            _queries(store, args.runs, label)
            text_s = _command(cfg, url)
            json_s = _command(cfg, url, "--json")
            figure("`reminders status` end to end", f"{text_s:,.2f} s", "-", None)
            figure("`reminders status --json` end to end", f"{json_s:,.2f} s", "-", None)
            if indexed:
                with store.write() as tx:
                    tx.conn.execute(sa.text(f"DROP INDEX {INDEX}"))
                analyze(store)
                _queries(store, args.runs, "index dropped")
        finally:
            store.close()
    note(
        f"{stored:,} reminders, {args.patients:,} patients, store built in {build_s:.1f} s; "
        "marked: " + ", ".join(f"{n:,} {k}" for k, n in marked.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
