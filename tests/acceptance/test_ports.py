"""The acceptance kit survives losing a free port to another test process."""

from __future__ import annotations

from pathlib import Path

import pytest

from reminders.testing import peer
from reminders.testing.smtp import SmtpRecorder
from reminders.testing.twilio import FakeTwilio

from . import service as kit
from .service import PATIENTS, RunningService, write_config


def test_run_is_started_again_on_another_port_when_its_port_was_taken(
    tmp_path: Path, twilio: FakeTwilio, smtp: SmtpRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If another process binds the port picked for ``run`` first, ``run`` exits saying so and is started on another port."""
    taken = peer.listening_socket()
    picks = iter([taken.getsockname()[1]])
    monkeypatch.setattr(kit, "free_port", lambda: next(picks, peer.free_port()))
    running = RunningService(tmp_path / "clinic", twilio, smtp)
    try:
        write_config(running.folder, PATIENTS, first_in=3600)
        running.start()
        running.wait_healthy()
        assert running.runs == 2
        assert running.port != taken.getsockname()[1]
        assert running.http.get("/healthz").status_code == 200
        assert peer.PORT_IN_USE in (running.folder / "run1.err").read_text("utf-8").lower()
    finally:
        running.close()
        taken.close()
