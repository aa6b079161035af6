"""Structured logs (structlog): JSON when asked or when not on a terminal; PHI never leaves.

Every event passes :func:`redact` last: values under keys that could hold message
content are dropped, and anything that looks like a phone number or an email
address is masked, wherever it appears. The standard library's loggers (uvicorn,
APScheduler) go through the same processors.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import structlog

from reminders.fields import mask_email, mask_phone

#: Keys whose values may carry a message body or a patient's reply: never logged.
CONTENT_KEYS: Final = frozenset(
    {"body", "text", "html", "subject", "message_body", "content", "reply"}
)
_EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w])\+?\d[\d\s().-]{6,}\d(?![\w])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}")
#: ISO dates and times are split off first so their digits are never read as a phone number.
_ISO = re.compile(
    r"(\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?|\d{2}:\d{2}(?::\d{2})?)"
)


def _mask_phone_match(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if len(digits) < 7 or len(digits) > 15 or _DATE.search(text):
        return text  # dates, times and short numbers are not phone numbers
    if text.startswith("+"):
        return mask_phone("+" + digits)
    return "*" * (len(digits) - 2) + digits[-2:]  # national form: no country code to keep


def mask_text(text: str) -> str:
    """``text`` with every email address and phone-number-like run masked."""
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    pieces = _ISO.split(text)
    # re.split with a group alternates: text, date, text, date, ...
    return "".join(p if i % 2 else _PHONE.sub(_mask_phone_match, p) for i, p in enumerate(pieces))


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: ("[redacted]" if k in CONTENT_KEYS else _clean(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop content keys and mask contact details in every value."""
    for key in list(event):
        if key in CONTENT_KEYS:
            event[key] = "[redacted]"
        else:
            event[key] = _clean(event[key])
    return event


def configure(fmt: str | None = None, level: str = "INFO") -> None:
    """Set up structlog and the standard library's logging for this process.

    ``fmt`` is ``json`` or ``console``; by default JSON unless stderr is a terminal.
    """
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party loggers that would otherwise echo request URLs with phone numbers at INFO.
    for noisy in ("twilio.http_client", "urllib3", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get(name: str) -> Any:
    """A structlog logger."""
    return structlog.get_logger(name)
