"""The coordinator dashboard under ``/app/`` (SPEC 12): served only with REMINDERS_SECRET_KEY.

==========  ===========================================================================
``auth``    sessions, the trusted auth proxy, CSRF tokens, the sign-in limit
``pages``   the routes: sign-in, worklist, patients, one patient, overview
``render``  the Jinja environment of the dashboard's own templates, the security headers
``words``   failure codes in plain words, with what to fix
==========  ===========================================================================

The pages read through the store's read side (:mod:`reminders.store.dashboard`); the
only writes are sessions, audit records and the alert actions.
"""

from __future__ import annotations

from fastapi import FastAPI

from reminders.web.context import WebContext
from reminders.web.dashboard.pages import add_dashboard_routes
from reminders.web.dashboard.render import SecurityHeaders

__all__ = ["SecurityHeaders", "add_dashboard"]


def add_dashboard(app: FastAPI, ctx: WebContext) -> None:
    """The dashboard's routes and headers on ``app``, if ``ctx`` has dashboard settings."""
    if ctx.dashboard is None:
        return
    app.add_middleware(SecurityHeaders)
    add_dashboard_routes(app, ctx, ctx.dashboard)
