"""Fixtures shared by every test layer: the shipped configuration and a fresh store.

The ``store`` fixture runs each test on SQLite and, when ``REMINDERS_TEST_POSTGRES_URL``
is set (``.ci/run`` sets it), again on PostgreSQL in a schema of its own, inside a
database of this test process's own (:mod:`tests.postgres`): tests run in
parallel (pytest-xdist, ``-n`` in pyproject.toml) and never see each other's data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reminders.config import load_schedules
from reminders.models import Schedules
from reminders.store import Store
from reminders.templates import Templates
from tests.postgres import fresh_schema, process_database

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("REMINDERS_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def shipped() -> Schedules:
    """The shipped schedules.yaml, parsed."""
    return load_schedules(REPO)


@pytest.fixture(scope="session")
def templates() -> Templates:
    """The shipped templates."""
    return Templates(REPO / "templates")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of this test process's own (xdist worker), dropped at the end."""
    if not POSTGRES_URL:
        pytest.skip("REMINDERS_TEST_POSTGRES_URL is not set")
    with process_database(POSTGRES_URL) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A URL to an empty PostgreSQL schema of this test's own, dropped afterwards."""
    with fresh_schema(postgres_database) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reminders.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A fresh, migrated outbox."""
    s = Store(database_url)
    yield s
    s.close()
