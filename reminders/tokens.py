"""HMAC-signed, opaque unsubscribe tokens: ``<reminder id, base 36>.<signature>``.

The token names the email reminder it came with, never the address: whoever sees
the link (a proxy log, a forwarded email) learns nothing about the patient. The
address is looked up from that reminder's enrollment when the link is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

#: A reminder id as :func:`sign` writes it: base 36, lower case, no leading zero.
_PAYLOAD: Final = re.compile("[1-9a-z][0-9a-z]{0,12}")


def _mac(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), f"unsubscribe:{payload}".encode(), hashlib.sha256).digest()[
        :16
    ]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def sign(secret: str, reminder_id: int) -> str:
    """A token proving this service issued the unsubscribe link of ``reminder_id``."""
    payload = _base36(reminder_id)
    return f"{payload}.{_mac(secret, payload)}"


def verify(secret: str, token: str) -> int | None:
    """The reminder id of a genuine token, else ``None``.

    Only the form :func:`sign` writes is read: lower-case base 36 without a leading
    zero (``int`` alone would also take ``+``, ``_``, spaces and upper case).
    """
    payload, dot, signature = token.partition(".")
    if not dot or not _PAYLOAD.fullmatch(payload):
        return None
    if not hmac.compare_digest(signature.encode(), _mac(secret, payload).encode()):
        return None
    return int(payload, 36)
