"""Acceptance: with a fifth of Twilio requests failing transiently, repeated ticks deliver each SMS once.

The endpoint (``python -m reminders.testing.twilio --fail-rate 0.2``) answers a seeded
fifth of create requests with 500, 503, 429 (Retry-After: 1) or "accepted, then 500";
``reminders tick`` runs every ten minutes of simulated time until every reminder is
settled. Helpers and the tick-time reasoning are shared with :mod:`.test_crash`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from reminders.testing.twilio import FakeMessage, read_record

from .conftest import Cli
from .test_crash import DAY1, Scenario, fake_twilio, tick

#: Reminders in the run.
COUNT = 150
#: Simulated minutes between ticks: longer than the fifth retry's longest backoff (8 min).
STEP = timedelta(minutes=10)
#: Ticks before giving up; 80 minutes stay well inside the day-1 expiry.
ROUNDS = 8


def test_transient_faults_are_retried_until_each_sms_arrived_exactly_once(
    tmp_path: Path, make_cli: Any
) -> None:
    """With 20% of sends failing (5xx, 429, accepted-then-500), repeated ticks deliver all 150 SMS, each exactly once."""
    scenario = Scenario.due(COUNT)
    cli: Cli = make_cli("clinic")
    cli.write_patients(scenario.records())
    totals: Counter[str] = Counter()
    rounds = 0
    with fake_twilio(tmp_path, "--fail-rate", "0.2", "--seed", "20261125") as (url, record):
        while totals["sent"] + totals["reconciled"] < COUNT:
            assert rounds < ROUNDS, f"not settled after {ROUNDS} ticks: {dict(totals)}"
            counts = tick(cli, url, scenario.at + rounds * STEP)
            totals.update({k: v for k, v in counts.items() if isinstance(v, int)})
            rounds += 1
        messages = read_record(record)

    assert totals["sent"] + totals["reconciled"] == COUNT
    assert (totals["failed"], totals["expired"]) == (0, 0)
    # Ticks that left reminders retrying or in doubt exited 3; the last one left none.
    assert counts["stuck"] == {"in_doubt": 0, "retrying": 0, "expired": 0}
    # Faults did happen, of every kind: plain retries (429), in-doubt 5xx, and
    # accepted-then-500 sends found by reconciliation instead of being resent.
    assert totals["retry"] > 0
    assert totals["in_doubt"] > 0
    assert totals["reconciled"] > 0
    assert rounds > 1

    per_message = Counter((m.to, m.body) for m in messages)
    assert len(per_message) == COUNT
    assert set(per_message.values()) == {1}, "some SMS arrived more than once"
    scenario.assert_each_received_once(messages)

    status = cli("status", "--json").json()
    assert status["reminders"]["sent"] == COUNT
    assert status["failures"] == []
    phone, _ = scenario.patients["P-0000"]
    [first] = [r for r in cli.timeline("P-0000") if r["milestone"] == DAY1]
    assert (first["status"], first["provider_id"]) == ("sent", per_number_sid(messages)[phone])


def per_number_sid(messages: Sequence[FakeMessage]) -> dict[str, str]:
    """The SID of the message each number received."""
    return {m.to: m.sid for m in messages}
