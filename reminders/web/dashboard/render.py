"""Pages: the Jinja environment of the dashboard's own templates, and the headers every
``/app/`` response carries.

These templates ship inside the package (``reminders/web/dashboard/templates``); they are
not the patient message templates of ``templates/``. They autoescape, and what they show
of the database is never marked safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reminders.web.dashboard.words import advice, local, opt_out_source

#: Every ``/app/`` response: nothing loaded from elsewhere, no script at all, never
#: framed, forms post only here; pages are never cached (they show patients), and the
#: patient id in a page's address is never sent on as a referrer.
HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_RAW_HEADERS: Final = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
CHANNEL_NAMES: Final = {"sms": "text", "email": "email"}


class SecurityHeaders:
    """ASGI middleware: :data:`HEADERS` on every response under ``/app/``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/app"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k for k, _ in _RAW_HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + _RAW_HEADERS}
            await send(message)

        await self.app(scope, receive, with_headers)


def _zone(name: str | Any) -> Any:
    return ZoneInfo(name) if isinstance(name, str) else name


@cache
def environment() -> Environment:
    """The dashboard's template environment (autoescaped, strict about undefined names)."""
    env = Environment(
        loader=PackageLoader("reminders.web.dashboard", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["urlpart"] = lambda text: quote(str(text), safe="")
    env.filters["channel"] = lambda name: CHANNEL_NAMES.get(name, name)
    env.globals.update(
        advice=advice,
        source=opt_out_source,
        local=lambda moment, zone: local(moment, _zone(zone)),
    )
    return env


def page(template: str, context: Mapping[str, Any], status: int = 200) -> HTMLResponse:
    """An HTML page from one of the dashboard's templates."""
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status)


def stylesheet(colours: Any) -> str:
    """The stylesheet, in the clinic's colours (validated ``#rgb``/``#rrggbb``)."""
    return environment().get_template("dashboard.css.j2").render(colours=colours)


def ago(moment: datetime | None, now: datetime) -> str:
    """``3 min``, ``2 h``, ``4 days``: how long before ``now``."""
    if moment is None:
        return ""
    seconds = max(int((now - moment).total_seconds()), 0)
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
