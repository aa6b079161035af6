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
#: Characters that end an address-like run: white space, brackets, double quotes and the
#: separators RFC 5322 forbids unquoted in an address. Everything else, ``'`` and ``/``
#: included, may be part of a local part ("o'brien@", "dana/clinic@"), so it is masked too.
_RUN = r'[^\s<>()\[\]",;:\\]'
#: Anything with an ``@`` inside such a run (``dana@@example.com`` too), or a quoted local part.
_EMAIL = re.compile(rf'"[^"\r\n]{{0,64}}"@{_RUN}*|{_RUN}*@{_RUN}*')
#: A run of digits written as people write phone numbers (at least 7 digits, counted below),
#: with an extension if one follows (``x12``, ``ext. 12``, ``#12``). A ``+`` (or ``%2B``, its
#: URL encoding in a form body) starts a number wherever it stands (``tel:+1...``,
#: ``x+1...``); otherwise a letter or digit just before the run means it is part of
#: something else (``SM0123...``).
_PHONE = re.compile(
    r"(?:(?P<plus>\+|%2B)|(?<![\w+]))(?P<number>\d[\d().\- \t\u00a0]{5,}\d)"
    r"(?P<ext>[ \t\u00a0]*(?:x|ext\.?|extension|#)[ \t\u00a0]*\d{1,10})?(?!\d)",
    re.IGNORECASE,
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}")
#: ISO dates and times are split off first so their digits are never read as a phone number.
_ISO = re.compile(
    r"(\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?|\d{2}:\d{2}(?::\d{2})?)"
)
#: Quotes and sentence punctuation around an address that are not part of it.
_OPENING, _CLOSING = "'`", "'`.!?"


def _mask_email_match(match: re.Match[str]) -> str:
    run = match.group(0)
    if not run.strip("@"):
        return run  # a lone "@" between words is not an address
    core = run.lstrip(_OPENING)
    address = core.rstrip(_CLOSING)
    return run[: len(run) - len(core)] + mask_email(address) + core[len(address) :]


def _mask_phone_match(match: re.Match[str]) -> str:
    plus, number = match.group("plus") or "", match.group("number")
    digits = re.sub(r"\D", "", number)
    if len(digits) < 7 or _DATE.search(number):
        return match.group(0)  # dates, times and short numbers are not phone numbers
    extension = re.sub(r"\d", "*", match.group("ext") or "")
    if plus:
        return plus + mask_phone("+" + digits)[1:] + extension
    # National form: no country code to keep.
    return "*" * (len(digits) - 2) + digits[-2:] + extension


def mask_text(text: str) -> str:
    """``text`` with everything that looks like an email address or a phone number masked.

    An address keeps the first character of its local part and its domain
    (``d***@example.com``); a number its first four digits after a ``+`` and its last
    two (``+1201*****23``), or only its last two without one, and no extension digit.
    """
    text = _EMAIL.sub(_mask_email_match, text)
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
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, bytes | bytearray):
        return mask_text(bytes(value).decode("utf-8", "replace"))
    # Anything else (an exception, a path, a date) would reach the renderer unmasked, as
    # its repr: it becomes its text here, masked like any other.
    return mask_text(str(value))


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
