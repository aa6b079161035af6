"""Acceptance: the SQLite database fills up under ``sync`` and under ``tick``.

The disk is made full for real, as SQLite sees it: a ``sitecustomize`` module on the
command's ``PYTHONPATH`` sets ``PRAGMA max_page_count`` on every connection it opens
to the database's current size, so the first write that needs a new page fails with
``SQLITE_FULL`` ("database or disk is full"), the same result code and the same path
through the service as a full file system. Nothing in the package knows about it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from reminders.testing import runner
from reminders.testing.runner import Result
from reminders.testing.twilio import FakeTwilio

from .conftest import Cli, iso, sample_patients, tick_counts
from .test_crash import Scenario, twilio_env

#: Sets every SQLite connection's page limit from the environment (test-only, on PYTHONPATH).
SITECUSTOMIZE = """
import os
import sqlite3

_pages = os.environ.get("SQLITE_MAX_PAGE_COUNT")
if _pages:
    _connect = sqlite3.connect

    def _full(*args, **kwargs):
        connection = _connect(*args, **kwargs)
        connection.execute(f"PRAGMA max_page_count={int(_pages)}")
        return connection

    sqlite3.connect = sqlite3.dbapi2.connect = _full
"""


def full_disk(cli: Cli, tmp_path: Path, room: int = 0) -> dict[str, str]:
    """Environment under which ``cli``'s database can grow by ``room`` pages, not one more
    (with no room, not by a single page, nor be created)."""
    site = tmp_path / "full-disk"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    path, pages = database_file(cli), 1
    if path.exists():
        with sqlite3.connect(path) as db:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
        db.close()
    return {"PYTHONPATH": str(site), "SQLITE_MAX_PAGE_COUNT": str(pages + room)}


#: Pages the tick test leaves free: its claim widens 40 rows (the leases), which splits a few
#: pages of a database filled to the brim; 8 leave room for that and some sends, not 40.
ROOM = 8


def database_file(cli: Cli) -> Path:
    """The SQLite file behind ``cli.database``."""
    return Path(cli.database.removeprefix("sqlite:///"))


def integrity(cli: Cli) -> str:
    """SQLite's own verdict on the database file."""
    db = sqlite3.connect(database_file(cli))
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def failed_cleanly(result: Result) -> str:
    """The one error line of a command that stopped on the full disk (exit 1, no traceback)."""
    assert result.code == 1, str(result)
    assert "Traceback" not in result.stdout + result.stderr, str(result)
    assert "sqlalchemy" not in result.stderr.lower(), str(result)
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "(SQLITE_FULL): database or disk is full" in line, line
    assert "(the disk holding the database is full: free space, then run it again)" in line, line
    return line


def status(cli: Cli, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``status --json``."""
    found: dict[str, Any] = cli("status", "--json", env=env).json()
    return found


def test_sync_on_a_full_disk_says_so_in_one_line_and_changes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    """A sync that fills the disk exits 1 with one line saying nothing changed; the database is intact and the same sync works once there is room."""
    cli("sync", "--now", "2026-11-15T12:00:00Z")
    before = status(cli)
    more = [
        {**sample_patients()[0], "id": f"P-{n:04d}", "email": f"p{n}@example.com"}
        for n in range(2000, 2200)
    ]
    cli.write_patients([*sample_patients(), *more])

    result = cli("sync", "--now", "2026-11-15T12:00:00Z", expect=None, env=full_disk(cli, tmp_path))

    line = failed_cleanly(result)
    assert line.startswith("error: sync not applied, nothing changed: database "), line
    assert integrity(cli) == "ok"
    assert status(cli) == before
    cli("sync", "--now", "2026-11-15T12:00:00Z")
    assert sum(status(cli)["patients"].values()) == 205


@pytest.mark.parametrize("command", [("db", "upgrade"), ("sync",)])
def test_creating_the_database_on_a_full_disk_says_so_in_one_line(
    cli: Cli, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """``db upgrade`` (or the first ``sync``) with no room to create the tables exits 1 with one line, no traceback; with room it works."""
    result = cli(*command, expect=None, env=full_disk(cli, tmp_path))

    line = failed_cleanly(result)
    assert re.match(r"error: (cannot migrate|cannot open) database sqlite:///", line), line
    cli("db", "upgrade")
    assert cli("db", "current").stdout.strip().endswith("(head)")


def test_a_tick_that_fills_the_disk_exits_1_gives_back_its_leases_and_sends_nothing_twice(
    make_cli: Any, tmp_path: Path, twilio: FakeTwilio
) -> None:
    """A tick whose database fills mid-batch exits 1 saying how many reminders it gave back; none stays ``sending``, and the next tick sends each SMS exactly once."""
    scenario = Scenario.due(40)
    cli: Cli = make_cli("clinic")
    cli.write_patients(scenario.records())
    # Batches of 10: the disk fills at a later batch's writes, with earlier ones recorded.
    env = {**twilio_env(twilio.url), "REMINDERS_WORKERS": "1", "REMINDERS_BATCH_SIZE": "10"}
    cli("sync", "--now", iso(scenario.at))

    stopped = runner.run(
        cli.folder,
        cli.database,
        "tick",
        "--now",
        iso(scenario.at),
        "--json",
        # Room for the claim (its leases widen the rows) and a few sends, not for 40.
        env={**env, **full_disk(cli, tmp_path, room=ROOM)},
    )

    line = failed_cleanly(stopped)
    assert line.startswith("error: tick stopped: database "), line
    assert "claimed reminders given back, none lost" in line, line
    sent_before = len(twilio.messages)
    assert 0 < sent_before < 40, f"the disk should fill mid-batch, {sent_before} sent\n{stopped}"
    assert integrity(cli) == "ok"
    statuses = status(cli, env)["reminders"]
    assert "sending" not in statuses, statuses

    counts = tick_counts(cli("tick", "--now", iso(scenario.at), "--json", env=env))

    assert counts["failed"] == 0, counts
    scenario.assert_each_received_once(twilio.messages)
    assert status(cli, env)["reminders"].get("sent") == 40
