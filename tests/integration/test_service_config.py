"""The running service keeps its last good configuration when an edit is broken."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import structlog
import yaml
from rich.console import Console

from reminders.app import App
from reminders.service import Service
from reminders.settings import Settings
from tests.conftest import REPO


def make_service(tmp_path: Path, database_url: str) -> Service:
    shutil.copy(REPO / "schedules.yaml", tmp_path / "schedules.yaml")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    shutil.copy(REPO / "patients.yaml", tmp_path / "patients.yaml")
    app = App(tmp_path, database=database_url, settings=Settings.from_env({}))
    return Service(app, console=Console(file=io.StringIO()))


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
    """A valid schedules.yaml edit replaces the configuration and re-plans on the next sync."""
    service = make_service(tmp_path, database_url)
    service.sync()
    doc = yaml.safe_load((tmp_path / "schedules.yaml").read_text())
    doc["clinic"]["name"] = "Example Orthopaedics"
    (tmp_path / "schedules.yaml").write_text(yaml.safe_dump(doc))
    service.sync()
    assert service.config.schedules.clinic.name == "Example Orthopaedics"
    assert service.dispatcher.composer.schedules.clinic.name == "Example Orthopaedics"
    service.store.close()
