"""The test kit's parts for tests run in parallel: a database per process, ports nobody shares."""

from __future__ import annotations

import smtplib
import socket
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from reminders.store import Store
from reminders.testing import peer
from reminders.testing.smtp import SmtpRecorder
from tests.conftest import POSTGRES_URL
from tests.postgres import database_name, fresh_schema, process_database


@pytest.fixture
def server_url() -> str:
    """The server URL tests are given (REMINDERS_TEST_POSTGRES_URL)."""
    if not POSTGRES_URL:
        pytest.skip("REMINDERS_TEST_POSTGRES_URL is not set")
    return POSTGRES_URL


def another_run() -> str:
    """A run id of its own (another test run's, as far as the helpers can tell)."""
    return uuid.uuid4().hex[:8]


def column(url: str, sql: str) -> list[Any]:
    """The first column of a query's rows."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).scalars())
    finally:
        engine.dispose()


def databases(server_url: str) -> set[str]:
    """Every database on the server."""
    return set(column(server_url, "SELECT datname FROM pg_database"))


@pytest.mark.postgres
def test_two_workers_get_databases_of_their_own_dropped_at_the_end(server_url: str) -> None:
    """Workers gw0 and gw1 of one run each get an empty database named after them; both are gone afterwards.

    Run ids are random here too: this test may run in two test runs at once.
    """
    base = sa.engine.make_url(server_url).database or "postgres"
    run = another_run()
    with (
        process_database(server_url, run=run, worker="gw0") as first,
        process_database(server_url, run=run, worker="gw1") as second,
    ):
        names = [sa.engine.make_url(u).database for u in (first, second)]
        assert names == [database_name(base, run, w) for w in ("gw0", "gw1")]
        assert set(names) <= databases(server_url)
        with fresh_schema(first) as url:
            Store(url).close()
            assert column(url, "SELECT tablename FROM pg_tables WHERE tablename = 'reminders'")
            tables = column(second, "SELECT tablename FROM pg_tables WHERE tablename = 'reminders'")
            assert tables == [], "one worker's tables are visible in the other's database"
    assert not set(names) & databases(server_url)


@pytest.mark.postgres
def test_a_killed_runs_database_is_dropped_and_one_in_use_is_kept(server_url: str) -> None:
    """A per-process database nobody is connected to (its run was killed) is dropped by the next run; one in use is not."""
    base = sa.engine.make_url(server_url).database or "postgres"
    stale = database_name(base, another_run(), "gw3")
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{stale}"'))
    try:
        with process_database(server_url, run=another_run(), worker="gw0") as busy:
            assert stale not in databases(server_url)
            with process_database(server_url, run=another_run(), worker="gw0"):
                assert sa.engine.make_url(busy).database in databases(server_url)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{stale}"'))
        admin.dispose()


def test_a_closed_port_refuses_connections_and_nobody_can_take_it() -> None:
    """While ``closed_port`` holds a port, connecting to it is refused and binding it fails."""
    with peer.closed_port() as port:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with socket.socket() as other, pytest.raises(OSError, match="in use") as caught:
            other.bind(("127.0.0.1", port))
        assert peer.is_port_in_use(caught.value)


def test_smtp_servers_hold_their_port_from_creation_to_stop() -> None:
    """An SMTP recorder owns its port as soon as it exists, serves on it, and gets it back after a restart."""
    recorder = SmtpRecorder()
    try:
        with socket.socket() as other, pytest.raises(OSError, match="in use"):
            other.bind((recorder.host, recorder.port))
        recorder.start()
        with smtplib.SMTP(recorder.host, recorder.port, timeout=30) as client:
            assert client.noop()[0] == 250
        port = recorder.port
        recorder.stop()
        recorder.start()
        assert recorder.port == port
        with smtplib.SMTP(recorder.host, recorder.port, timeout=30) as client:
            assert client.noop()[0] == 250
    finally:
        recorder.stop()
