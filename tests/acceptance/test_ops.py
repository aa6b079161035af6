"""Acceptance: what an operator sees of the schema and of ``run`` under a service manager.

``run`` is started as systemd or Docker start it (stdout and stderr are files, not a
terminal); ``db current`` and ``db upgrade`` are run as an operator migrating before a
start would. Every database test runs on SQLite and, with REMINDERS_TEST_POSTGRES_URL,
on PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reminders.store import Store, migrate
from reminders.testing import runner
from reminders.testing.smtp import SmtpRecorder
from reminders.testing.twilio import FakeTwilio

from .conftest import Cli
from .service import FIRST, PATIENTS, RunningService, wait_for, write_config

#: A revision no version of this project has shipped: a database from "the future".
FUTURE = "9999"


@pytest.fixture
def service(tmp_path: Path, twilio: FakeTwilio, smtp: SmtpRecorder) -> Iterator[RunningService]:
    """A ``run`` process whose first reminders are due in ten minutes (nothing is sent during a test)."""
    running = RunningService(tmp_path / "clinic", twilio, smtp)
    write_config(running.folder, PATIENTS, first_in=600)
    yield running
    running.close()


def start_and_stop(service: RunningService) -> tuple[str, list[dict[str, Any]]]:
    """One start of ``run`` until /healthz answers, then SIGTERM: its stdout and its log events."""
    service.start()
    service.wait_healthy()
    code, _ = service.stop()
    assert code == 0, service.output()
    n = service.runs
    stdout = (service.folder / f"run{n}.out").read_text("utf-8")
    lines = (service.folder / f"run{n}.err").read_text("utf-8").splitlines()
    return stdout, [json.loads(line) for line in lines if line.strip()]  # every line is JSON


def stamp(url: str, revision: str) -> None:
    """Set the database's recorded schema revision, as a newer release's migration would."""
    engine = Store(url, migrate=False).engine
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def revision_of(url: str) -> str | None:
    """The schema revision the database records."""
    engine = Store(url, migrate=False).engine
    with engine.connect() as conn:
        found = migrate.current(conn)
    engine.dispose()
    return found


# -- run under a service manager --------------------------------------------------------------


def test_start_logs_a_migration_in_one_line_and_nothing_from_alembic(
    service: RunningService,
) -> None:
    """The first start logs one database.migrated line (empty -> head) and no Alembic line; a second start logs no migration."""
    _, first = start_and_stop(service)
    _, second = start_and_stop(service)

    assert [e["logger"] for e in first + second if e["logger"].startswith("alembic")] == []
    migrated = [e for e in first if e["event"] == "database.migrated"]
    assert [(e["from_revision"], e["to_revision"]) for e in migrated] == [(None, migrate.head())]
    assert [e for e in second if e["event"] == "database.migrated"] == []
    assert "service.started" in [e["event"] for e in second]


def test_run_with_piped_output_prints_nothing_and_logs_the_next_reminders_as_json(
    service: RunningService,
) -> None:
    """Off a terminal, ``run`` writes nothing on stdout; the next reminders are one JSON log line."""
    stdout, events = start_and_stop(service)

    assert stdout == ""
    [upcoming] = [e for e in events if e["event"] == "upcoming"]
    # 3 patients x 2 channels x (the first message in ten minutes, and tomorrow's).
    assert upcoming["count"] == len(upcoming["reminders"]) == 12
    first = {
        (r["patient_id"], r["channel"]) for r in upcoming["reminders"] if r["milestone"] == FIRST
    }
    assert first == {(p.id, c) for p in PATIENTS for c in ("sms", "email")}


def test_run_refuses_a_database_a_newer_release_migrated_and_leaves_it_alone(
    cli: Cli, database_url: str
) -> None:
    """``run`` on a database at a revision this version does not ship exits 1 naming the revision, without a traceback, and changes nothing."""
    cli.database = database_url
    cli("db", "upgrade")
    stamp(database_url, FUTURE)

    result = runner.run(cli.folder, database_url, "run")

    assert result.code == 1, str(result)
    assert "Traceback" not in result.stderr, str(result)
    assert f"revision {FUTURE}" in result.stderr
    assert "newer release" in result.stderr
    assert revision_of(database_url) == FUTURE


# -- db current / db upgrade --------------------------------------------------------------------


def test_db_current_and_upgrade_report_and_bring_an_old_schema_to_head(
    make_cli: Callable[[str], Cli], database_url: str
) -> None:
    """On a database at 0001, ``db current`` says it is behind, ``db upgrade`` says 0001 -> head, and a second upgrade has nothing to do."""
    cli = make_cli("clinic")  # its default database would be clinic/reminders.db
    cli.database = database_url
    engine = Store(database_url, migrate=False).engine
    migrate.upgrade(engine, "0001")
    engine.dispose()
    head = migrate.head()

    behind = cli("db", "current")
    assert behind.stdout.startswith(f"0001 (behind head {head})"), str(behind)
    document = cli("db", "current", "--json").json()
    del document["database"]
    assert document == {
        "current": "0001",
        "head": head,
        "at_head": False,
        "newer": False,
    }
    upgraded = cli("db", "upgrade")
    assert f": 0001 -> {head}" in upgraded.stdout, str(upgraded)
    assert revision_of(database_url) == head
    again = cli("db", "upgrade", "--json").json()
    assert (again["from"], again["to"], again["migrated"]) == (head, head, False)
    assert cli("db", "current").stdout.strip() == f"{head} (head)"
    assert not (cli.folder / "reminders.db").exists()  # --database was used, not the default


def test_db_upgrade_creates_and_migrates_an_empty_database(cli: Cli, database_url: str) -> None:
    """``db upgrade`` on an empty database reports empty -> head and leaves it at head."""
    cli.database = database_url

    result = cli("db", "upgrade", "--json").json()

    assert (result["from"], result["to"], result["migrated"]) == (None, migrate.head(), True)
    assert revision_of(database_url) == migrate.head()


def test_db_commands_report_and_refuse_a_database_a_newer_release_migrated(
    cli: Cli, database_url: str
) -> None:
    """``db current`` names the unknown revision and exits 1; ``db upgrade`` refuses and changes nothing."""
    cli.database = database_url
    cli("db", "upgrade")
    stamp(database_url, FUTURE)

    current = cli("db", "current", expect=1)
    assert current.stdout.startswith(f"{FUTURE} (unknown to this version"), str(current)
    upgrade = cli("db", "upgrade", expect=1)
    assert f"revision {FUTURE}" in upgrade.stderr, str(upgrade)
    assert revision_of(database_url) == FUTURE


def test_db_current_does_not_create_a_missing_sqlite_database(cli: Cli) -> None:
    """``db current`` on a SQLite file that does not exist says so, exits 1 and creates nothing."""
    missing = cli.folder / "missing.db"
    cli.database = f"sqlite:///{missing}"

    result = cli("db", "current", expect=1)

    assert "no database at" in result.stderr
    assert not missing.exists()


@pytest.mark.postgres
def test_db_upgrade_waits_for_the_lock_the_service_migrates_under(
    cli: Cli, postgres_url: str
) -> None:
    """While another session holds the migration lock, ``db upgrade`` waits for it, then migrates."""
    cli.database = postgres_url
    engine = sa.create_engine(postgres_url)
    with engine.connect() as holder, engine.connect() as watcher:
        holder.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": migrate._LOCK})
        proc = runner.spawn(
            cli.folder,
            postgres_url,
            "db",
            "upgrade",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

        def waiting() -> bool:
            assert proc.poll() is None, "db upgrade finished while the lock was held"
            # A transaction of its own each time: pg_stat_activity is a per-transaction snapshot.
            with watcher.begin():
                found = watcher.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
                        " AND query LIKE '%pg_advisory_xact_lock%'"
                    )
                ).scalar_one()
            return bool(found)

        try:
            wait_for("db upgrade to wait on the migration lock", waiting, timeout=30)
        finally:
            holder.rollback()  # releases the lock
        out, err = proc.communicate(timeout=runner.TIMEOUT)
    engine.dispose()
    assert proc.returncode == 0, err.decode()
    assert f"-> {migrate.head()}" in out.decode()
