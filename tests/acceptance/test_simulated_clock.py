"""Acceptance: a ``--now`` far ahead of the real clock is refused unless ``--simulate`` says it is meant.

``tick --now T`` sends what is due by T and expires, for good, what expires before it; a
typo in the year would do that to every patient at once. The times here are relative to
the machine's real clock, which is what the guard compares with.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from .conftest import Cli, iso, sample_patients, tick_counts


def snapshot(cli: Cli) -> tuple[Any, ...]:
    """Everything a refused command must leave as it was: the counts and every timeline."""
    status = cli("status", "--json").json()
    status.pop("next_due")  # computed from the rows compared below
    return status, *(cli.timeline(pid) for pid in ("P-1001", "P-1002", "P-1003", "P-1004"))


@pytest.mark.parametrize("command", ["tick", "sync"])
def test_a_now_days_ahead_of_the_clock_is_refused_and_changes_nothing(
    cli: Cli, command: str
) -> None:
    """``tick`` or ``sync`` with ``--now`` three days ahead exits 1 with one line naming ``--simulate``, and no reminder changes."""
    cli("sync")
    before = snapshot(cli)
    ahead = datetime.now(UTC) + timedelta(days=3)

    refused = cli(command, "--now", iso(ahead), "--json", expect=1)

    assert refused.stdout == ""
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: --now {iso(ahead)} is 3 days ahead of this machine's clock")
    assert "--simulate" in line
    assert snapshot(cli) == before


def test_simulate_lets_a_far_now_run_on_a_test_database(cli: Cli) -> None:
    """With ``--simulate`` the same tick runs: what is due is sent and what expired by then is marked so."""
    # Surgery five days before today, whatever today is: days 1 and 2 (1-day expiry) have
    # expired by noon three days on, and week 1 (10:00 two days on, 2-day expiry) is due
    # then. Noon local: at night the send window would only defer it.
    [patient] = [p for p in sample_patients() if p["id"] == "P-1001"]
    zone = ZoneInfo(patient["timezone"])
    today = datetime.now(zone).date()
    cli.write_patients([{**patient, "surgery_date": today - timedelta(days=5)}])
    cli("sync")
    ahead = datetime.combine(today + timedelta(days=3), time(12), zone).astimezone(UTC)

    counts = tick_counts(cli("tick", "--now", iso(ahead), "--simulate", "--json"))

    assert counts["sent"] > 0
    assert counts["expired"] > 0


def test_a_now_less_than_a_day_ahead_needs_no_simulate(cli: Cli) -> None:
    """A ``--now`` 23 hours ahead (a cron job on a slightly wrong clock, a test) runs as before."""
    cli("sync")
    cli("tick", "--now", iso(datetime.now(UTC) + timedelta(hours=23)), "--json")
