"""The HTTP side of the service (FastAPI): Twilio webhooks, unsubscribe, calendar, health, metrics.

:func:`create_app` assembles the parts that live in :mod:`reminders.web`:

===================  ================================================================
``web.limits``       every request body capped (413) before anything reads it
``web.webhook``      what a Twilio webhook must be: signature, parameter names and
                     shapes, query string (403 / 400 otherwise, nothing changed)
``web.twilio``       ``POST /twilio/inbound`` and ``POST /twilio/status``
``web.pages``        ``GET|POST /unsubscribe/{token}``, in the patient's language
``web.calendar``     ``GET /calendar/{token}.ics``, the patient's milestones
``web.dashboard``    the coordinators' pages under ``/app/`` (with REMINDERS_SECRET_KEY)
``web.checkin``      ``GET|POST /checkin/{token}``: an email patient answers a check-in
===================  ================================================================

and serves ``/healthz``, ``/readyz`` and ``/metrics`` itself. The OpenAPI document
and its viewers are off unless asked for (tests fuzz the app against it).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from reminders.errors import StoreError
from reminders.metrics import CONTENT_TYPE
from reminders.web.calendar import add_calendar_routes
from reminders.web.checkin import add_check_in_routes
from reminders.web.context import DashboardSettings, WebContext
from reminders.web.dashboard import add_dashboard
from reminders.web.limits import BodyLimit
from reminders.web.pages import add_unsubscribe_routes
from reminders.web.twilio import add_twilio_routes

__all__ = ["DashboardSettings", "WebContext", "create_app", "secure_cookies"]


def secure_cookies(public_url: str | None, http_host: str) -> bool:
    """Whether cookies need ``Secure``: always, unless the service is plain http on loopback."""
    host = urlsplit(public_url).hostname if public_url else http_host
    plain = public_url is None or public_url.startswith("http://")
    try:
        loopback = ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        loopback = host == "localhost"
    return not (plain and loopback)


def create_app(ctx: WebContext, *, openapi: bool = False) -> FastAPI:
    """The ASGI application; ``openapi`` serves its schema at ``/openapi.json``."""
    app = FastAPI(
        title="Recovery reminders",
        version="1",
        openapi_url="/openapi.json" if openapi else None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(BodyLimit)
    add_twilio_routes(app, ctx)
    add_unsubscribe_routes(app, ctx)
    add_calendar_routes(app, ctx)
    add_dashboard(app, ctx)
    add_check_in_routes(app, ctx)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """The database answers and the scheduler runs."""
        try:
            ctx.store.ping()
            database = "ok"
        except StoreError:
            database = "unreachable"
        scheduler = "running" if ctx.running() else "stopped"
        ok = database == "ok" and scheduler == "running"
        return JSONResponse(
            {"database": database, "scheduler": scheduler}, status_code=200 if ok else 503
        )

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus exposition."""
        return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)

    return app
