"""HMAC-signed, opaque tokens of links in emails: ``<reminder id, base 36>.<signature>``.

The token names the email reminder it came with, never the address: whoever sees
the link (a proxy log, a forwarded email) learns nothing about the patient. The
address is looked up from that reminder's enrollment when the link is used.

Each kind of link signs for its own purpose (:data:`UNSUBSCRIBE`, :data:`CALENDAR`,
:data:`CHECK_IN`): one kind's token never opens another kind's page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

#: The purpose of an unsubscribe link's token.
UNSUBSCRIBE: Final = "unsubscribe"
#: The purpose of a calendar link's token (``/calendar/{token}.ics``).
CALENDAR: Final = "calendar"
#: The purpose of a check-in page's token (``/checkin/{token}``).
CHECK_IN: Final = "check-in"
#: A reminder id as :func:`sign` writes it: base 36, lower case, no leading zero.
_PAYLOAD: Final = re.compile("[1-9a-z][0-9a-z]{0,12}")


def _mac(secret: str, payload: str, purpose: str) -> str:
    message = f"{purpose}:{payload}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def sign(secret: str, reminder_id: int, purpose: str = UNSUBSCRIBE) -> str:
    """A token proving this service issued the ``purpose`` link of ``reminder_id``."""
    payload = _base36(reminder_id)
    return f"{payload}.{_mac(secret, payload, purpose)}"


def verify(secret: str, token: str, purpose: str = UNSUBSCRIBE) -> int | None:
    """The reminder id of a genuine token, else ``None``.

    Only the form :func:`sign` writes is read: lower-case base 36 without a leading
    zero (``int`` alone would also take ``+``, ``_``, spaces and upper case).
    """
    payload, dot, signature = token.partition(".")
    if not dot or not _PAYLOAD.fullmatch(payload):
        return None
    if not hmac.compare_digest(signature.encode(), _mac(secret, payload, purpose).encode()):
        return None
    return int(payload, 36)
