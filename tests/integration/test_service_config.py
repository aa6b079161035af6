"""The running service keeps its last good configuration when an edit is broken."""

from __future__ import annotations

import io
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog
import yaml
from rich.console import Console

from reminders.app import App
from reminders.service import Service
from reminders.settings import Settings
from reminders.store import TimelineEntry
from tests.conftest import REPO

#: Five days after the first sample patient's surgery (2026-11-20, New York).
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")


def timeline(service: Service, pid: str) -> dict[tuple[str, int, str], TimelineEntry]:
    """The stored reminders of ``pid``, by (milestone, occurrence, channel)."""
    with service.store.read() as tx:
        return {(e.milestone, e.occurrence, e.channel): e for e in tx.views.timeline(pid)}


def make_service(tmp_path: Path, database_url: str) -> Service:
    """A service over copies of the shipped configuration and sample patients, its clock at NOW."""
    shutil.copy(REPO / "schedules.yaml", tmp_path / "schedules.yaml")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    shutil.copy(REPO / "patients.yaml", tmp_path / "patients.yaml")
    app = App(tmp_path, database=database_url, settings=Settings.from_env({}))
    return Service(app, console=Console(file=io.StringIO()), clock=lambda: NOW)


def test_broken_schedules_edit_is_reported_and_the_last_good_config_kept(
    tmp_path: Path, database_url: str
) -> None:
    """A schedules.yaml edit that fails validation is logged as rejected; the service keeps planning with the old one."""
    service = make_service(tmp_path, database_url)
    service.sync()
    good = service.config.schedules
    doc = yaml.safe_load((tmp_path / "schedules.yaml").read_text())
    doc["defaults"]["send_window"] = "22:00-06:00"  # invalid: must start before it ends
    (tmp_path / "schedules.yaml").write_text(yaml.safe_dump(doc))
    with structlog.testing.capture_logs() as logs:
        service.sync()
    assert service.config.schedules is good
    assert service.dispatcher.composer.schedules is good
    rejected = [e for e in logs if e["event"] == "config.rejected"]
    assert len(rejected) == 1
    assert "schedules.yaml" in rejected[0]["error"]
    assert "send_window" in rejected[0]["error"]
    service.store.close()


def test_good_edit_is_applied(tmp_path: Path, database_url: str) -> None:
    """A valid schedules.yaml edit replaces the configuration and re-plans stored reminders on the next sync.

    Catches: a service that takes the new schedules but leaves the stored plan as it was.
    """
    service = make_service(tmp_path, database_url)
    service.sync()
    before = timeline(service, "P-1001")  # Dana: surgery 2026-11-20, goal sport
    doc = yaml.safe_load((tmp_path / "schedules.yaml").read_text())
    doc["clinic"]["name"] = "Example Orthopaedics"
    milestones = doc["protocols"]["proximal-hamstring-repair"]["milestones"]
    moved = next(m for m in milestones if m["id"] == "brace-removal")
    assert moved["at"] == "week 6"
    moved["at"] = "week 7"
    milestones.remove(next(m for m in milestones if m["id"] == "book-sport-review"))
    (tmp_path / "schedules.yaml").write_text(yaml.safe_dump(doc))

    service.sync()

    assert service.config.schedules.clinic.name == "Example Orthopaedics"
    assert service.dispatcher.composer.schedules.clinic.name == "Example Orthopaedics"
    after = timeline(service, "P-1001")
    assert after.keys() == before.keys()
    week7 = datetime.combine(date(2026, 11, 20) + timedelta(weeks=7), time(10), NEW_YORK)
    changed = {"brace-removal": 0, "book-sport-review": 0}
    for key, e in after.items():
        old = before[key]
        if key[0] == "brace-removal":
            assert (old.due_at, e.status, e.due_at) == (
                week7.astimezone(UTC) - timedelta(weeks=1),
                "planned",
                week7.astimezone(UTC),
            )
        elif key[0] == "book-sport-review":
            assert (old.status, e.status, e.due_at) == ("planned", "cancelled", old.due_at)
        else:  # as it was (an expired-at-enrollment one written out as a row, with an id)
            assert e.model_dump(exclude={"id"}) == old.model_dump(exclude={"id"})
            continue
        changed[key[0]] += 1
    assert changed == {"brace-removal": 2, "book-sport-review": 2}  # SMS and email each
    service.store.close()
