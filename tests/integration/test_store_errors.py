"""Every way the database can fail reaches people as one StoreError line, never SQL or values.

``tests/integration/test_input_bounds.py`` covers a statement the database refuses; these
cover the failures that happen before or around one: a value that cannot even be bound,
a server that does not answer, and a full disk during a migration is in
``tests/acceptance/test_disk_full.py``.
"""

from __future__ import annotations

import socket
from datetime import datetime

import pytest

from reminders.errors import StoreError
from reminders.store import Store

EMAIL = "dana.reyes@example.com"


def test_a_value_that_cannot_be_bound_is_a_store_error_without_the_statement(
    store: Store,
) -> None:
    """A write whose value fails before it reaches the database (a naive time) is a StoreError with neither the SQL nor the row."""
    with pytest.raises(StoreError) as caught, store.write() as tx:
        tx.audit([{"at": datetime(2026, 11, 24, 10), "kind": "x", "detail": {"to": EMAIL}}])  # noqa: DTZ001  # the naive time under test

    text = str(caught.value)
    assert "a value could not be sent to the database" in text
    assert "INSERT" not in text
    assert EMAIL not in text


def test_an_unreachable_server_is_a_store_error_without_sqlalchemys_text() -> None:
    """``ping`` of a PostgreSQL server that refuses connections raises one line naming the database, no SQL, no SQLAlchemy link."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = Store(f"postgresql+psycopg://reminders:secret@127.0.0.1:{port}/x", migrate=False)
    try:
        with pytest.raises(StoreError) as caught:
            store.ping()
    finally:
        store.close()

    text = str(caught.value)
    assert text.startswith(
        f"unreachable: database postgresql+psycopg://reminders:***@127.0.0.1:{port}/x: "
    )
    assert "OperationalError" in text
    assert "SELECT 1" not in text
    assert "sqlalche.me" not in text
    assert "secret" not in text
    assert "\n" not in text


def test_postgresql_connections_run_without_jit(postgres_url: str) -> None:
    """Every connection of the store has JIT off, also when it comes back from the pool."""
    store = Store(postgres_url)
    try:
        for _ in range(2):
            with store.read() as tx:
                assert tx.conn.exec_driver_sql("SHOW jit").scalar() == "off"
    finally:
        store.close()
