"""HMAC-signed, opaque unsubscribe tokens: ``<reminder id, base 36>.<signature>``.

The token names the email reminder it came with, never the address: whoever sees
the link (a proxy log, a forwarded email) learns nothing about the patient. The
address is looked up from that reminder's enrollment when the link is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


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
    """The reminder id of a genuine token, else ``None``."""
    payload, dot, signature = token.partition(".")
    if (
        not dot
        or not payload
        or len(payload) > 13
        or not hmac.compare_digest(signature.encode(), _mac(secret, payload).encode())
    ):
        return None
    try:
        return int(payload, 36)
    except ValueError:
        return None
