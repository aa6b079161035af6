"""``reminders demo``: the whole protocol for the sample patients on a simulated clock."""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from rich.console import Console

from reminders.app import Config
from reminders.channels.base import Channel
from reminders.channels.console import ConsoleChannel
from reminders.dispatch import Dispatcher
from reminders.models import CHANNELS
from reminders.patients import read_records
from reminders.store import OutboxManager, Store
from reminders.sync import sync_patients


def run_demo(config: Config, patients: Path, console: Console) -> None:
    """Enrol the sample patients in a throw-away database and deliver every reminder to ``console``.

    The clock jumps from one due time to the next, so six months take seconds.
    """
    records = read_records(patients, config.schedules)
    dates = sorted(
        str(r.fields["surgery_date"])
        for r in records
        if r.fields.get("surgery_date") not in (None, "")
    )
    if not dates:
        console.print(f"{patients}: no patients with a surgery_date; nothing to show")
        return
    start = datetime.combine(
        datetime.fromisoformat(dates[0]).date() - timedelta(days=1), time(0), tzinfo=UTC
    )
    with tempfile.TemporaryDirectory(prefix="reminders-demo-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'demo.db'}")
        try:
            report = sync_patients(store, config.schedules, patients, start)
            for problem in report.problems:
                console.print(f"[yellow]skipped[/] {problem}")
            if report.paused:
                console.print(
                    f"paused (held: nothing is sent, and what falls due meanwhile expires): "
                    f"{', '.join(report.paused)}"
                )
            console.rule(
                f"demo: {len(report.enrolled)} patients from {patients}, "
                f"simulated from {start:%Y-%m-%d}, "
                "console delivery"
            )
            channels: dict[str, Channel] = {
                # The demo is asked for to show the messages: texts even into a pipe.
                name: ConsoleChannel(name, console, text=True)
                for name in CHANNELS
            }
            dispatcher = Dispatcher(
                OutboxManager(store),
                config.composer,
                channels,
                owner="demo",
                rng=random.Random(0),  # noqa: S311
            )
            now = start
            totals: dict[str, int] = {}
            while True:
                with store.read() as tx:
                    due = tx.views.next_due()
                if due is None:
                    break
                now = max(now, due)
                for outcome, n in dispatcher.tick(now).as_dict().items():
                    totals[outcome] = totals.get(outcome, 0) + n
            with store.read() as tx:
                summary = tx.views.summary()
            console.rule("demo finished")
            console.print(
                f"simulated until {now:%Y-%m-%d %H:%M} UTC; "
                + ", ".join(f"{n} {k}" for k, n in totals.items() if n)
                + "; reminders by status: "
                + ", ".join(f"{n} {k}" for k, n in sorted(summary.reminders.items()))
            )
        finally:
            store.close()
