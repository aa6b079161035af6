"""PostgreSQL for tests run in parallel: a database per test process, a schema per test.

The fixtures ``postgres_database`` and ``postgres_url`` (``tests/conftest.py``) use it.

Tests run in several processes at once (pytest-xdist workers), and several test runs may
share one server (two checkouts, a developer and CI). Each process therefore works in a
database of its own, named after the server URL's database, the run and the worker::

    test_3f2a9c1b_gw0      # run 3f2a9c1b, xdist worker gw0
    test_5d0e77aa_main     # a run without xdist

:func:`process_database` creates it (from the URL every test is given, e.g.
``REMINDERS_TEST_POSTGRES_URL``), keeps one idle connection to it open while it is in use,
and drops it afterwards. A database left behind by a run that was killed has no such
connection, and the next run drops it (:func:`sweep`); a database in use is never touched.
:func:`fresh_schema` gives one test an empty schema of its own inside that database; the
URL it yields sets ``search_path``, so subprocesses (``reminders run`` instances) given that
URL work in the same schema.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import sqlalchemy as sa

#: pg_advisory_lock key serialising database creation and the sweep ("testdbs" in ASCII).
_LOCK: Final = 0x74657374646273
#: PostgreSQL's identifier limit, less room for ``_<run>_<worker>``.
_BASE_CHARS: Final = 40
#: What follows ``<base>_`` in the name of a per-process database.
_SUFFIX = re.compile(r"^[a-z0-9]{8}_(?:gw[0-9]+|main)$")


def run_id() -> str:
    """Eight characters naming this test run, shared by all its xdist workers."""
    shared = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
    return shared[:8].lower() if shared else uuid.uuid4().hex[:8]


def worker_id() -> str:
    """``gw0``, ``gw1``... in an xdist worker; ``main`` without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def database_name(base: str, run: str, worker: str) -> str:
    """``<base>_<run>_<worker>``, as a safe lower-case identifier."""
    name = f"{base[:_BASE_CHARS]}_{run}_{worker}".lower()
    return re.sub(r"[^a-z0-9_]", "_", name)


def _quote(name: str) -> str:
    assert re.fullmatch(r"[a-z0-9_]+", name), name  # built by database_name
    return f'"{name}"'


def _admin(url: str) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def sweep(server_url: str) -> list[str]:
    """Drop the per-process databases of earlier runs that nobody is connected to; their names.

    The caller holds the creation lock (see :func:`process_database`).
    """
    base = sa.engine.make_url(server_url).database or "postgres"
    prefix = database_name(base, "", "").removesuffix("__")
    dropped = []
    engine = _admin(server_url)
    try:
        with engine.connect() as conn:
            # Only databases nobody is connected to: DROP DATABASE waits 5 s before it gives
            # up on one in use, and this runs under the lock every new worker waits for.
            names = conn.execute(
                sa.text(
                    "SELECT datname FROM pg_database d WHERE datname LIKE :like AND NOT EXISTS"
                    " (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)"
                ),
                {"like": prefix.replace("_", r"\_") + r"\_%"},
            ).scalars()
            for name in names:
                if not _SUFFIX.match(name[len(prefix) + 1 :]):
                    continue
                try:
                    conn.execute(sa.text(f"DROP DATABASE IF EXISTS {_quote(name)}"))
                except sa.exc.OperationalError:
                    continue  # in use: another run's process holds it
                dropped.append(name)
    finally:
        engine.dispose()
    return dropped


@contextmanager
def process_database(server_url: str, *, run: str = "", worker: str = "") -> Iterator[str]:
    """A fresh database for this test process on the server of ``server_url``; its URL.

    ``run`` and ``worker`` default to :func:`run_id` and :func:`worker_id`. The database
    is dropped when the block ends.
    """
    url = sa.engine.make_url(server_url)
    name = database_name(url.database or "postgres", run or run_id(), worker or worker_id())
    admin = _admin(server_url)
    own = url.set(database=name)
    holder = None
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK})
            try:
                sweep(server_url)
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)"))
                conn.execute(sa.text(f"CREATE DATABASE {_quote(name)}"))
                # Tests never need a commit to survive a server crash: do not wait for the disk.
                conn.execute(sa.text(f"ALTER DATABASE {_quote(name)} SET synchronous_commit = off"))
                # Held open until the end: marks the database as in use for other runs' sweeps.
                holder = _admin(own.render_as_string(hide_password=False)).connect()
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK})
        yield own.render_as_string(hide_password=False)
    finally:
        if holder is not None:
            holder.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)"))
        admin.dispose()


@contextmanager
def fresh_schema(database_url: str) -> Iterator[str]:
    """An empty schema of its own in ``database_url``'s database; a URL that works in it.

    The URL sets ``search_path`` (``options=-csearch_path=...``); the schema is dropped,
    with everything in it, when the block ends.
    """
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = _admin(database_url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        url = sa.engine.make_url(database_url).update_query_dict(
            {"options": f"-csearch_path={schema}"}
        )
        yield url.render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()
