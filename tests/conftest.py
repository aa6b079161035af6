"""Fixtures shared by every test layer: the shipped configuration and a fresh store.

The ``store`` fixture runs each test on SQLite and, when ``REMINDERS_TEST_POSTGRES_URL``
is set (``.ci/run`` sets it), again on PostgreSQL in a schema of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from reminders.config import load_schedules
from reminders.models import Schedules
from reminders.store import Store
from reminders.templates import Templates

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


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to an empty PostgreSQL schema of this test's own, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("REMINDERS_TEST_POSTGRES_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.engine.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


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
