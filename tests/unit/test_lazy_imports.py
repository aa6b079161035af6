"""Heavy libraries are imported by the commands that use them, not by every command.

Each check runs in a fresh interpreter and reads ``sys.modules``: what a module pulls in at
import time, not how long it takes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def imported_after(module: str, candidates: tuple[str, ...]) -> set[str]:
    """Which of ``candidates`` are in ``sys.modules`` after importing ``module`` afresh."""
    code = (
        f"import json, sys, {module}; "
        f"print(json.dumps([m for m in {list(candidates)!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        # Every command loads the CLI: none of them needs the HTTP stack, iCalendar or FHIR
        # models just to start (``run`` and ``serve`` import the service themselves), nor
        # the Twilio client unless it sends.
        (
            "reminders.cli",
            ("fastapi", "starlette", "uvicorn", "icalendar", "fhir.resources", "twilio"),
        ),
        # ``run`` serves HTTP, but reads no FHIR Bundle unless the patients file is one and
        # writes a calendar only when one is asked for.
        ("reminders.service", ("icalendar", "fhir.resources")),
    ],
)
def test_libraries_not_needed_at_start_are_not_imported(
    module: str, absent: tuple[str, ...]
) -> None:
    """Importing ``module`` leaves the libraries it does not need at start unimported."""
    assert imported_after(module, absent) == set()
