"""The ``reminders`` command line (SPEC section 5), one module per group of commands.

================  ==============================================================
``root``          the Typer app, global options, shared helpers
``checks``        ``validate``, ``preview``
``delivery``      ``sync``, ``tick``, ``demo``, ``run``, ``serve``
``reading``       ``timeline``
``status``        ``status``: counts, and every reminder that needs a coordinator
``db``            ``db current``, ``db upgrade``
``resend``        ``resend``: one message again, on purpose, audited
``interop``       ``calendar``, ``export fhir``: for calendars and the EHR
``users``         ``users add|list|disable``: dashboard accounts
``checkins``      ``inbound``, ``alerts`` (``ack``, ``resolve``), ``answers``, ``report``
================  ==============================================================
"""

from __future__ import annotations

import sys

from . import (  # noqa: F401  # each registers its commands
    checkins,
    checks,
    db,
    delivery,
    interop,
    reading,
    resend,
    status,
    users,
)
from .root import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
