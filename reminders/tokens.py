"""HMAC-signed unsubscribe tokens: ``<channel>.<address, base64>.<signature>``."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, channel: str, address: str) -> str:
    """A token that proves this service issued the unsubscribe link for ``address``."""
    payload = f"{channel}.{_b64(address.encode())}"
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()[:16]
    return f"{payload}.{_b64(mac)}"


def verify(secret: str, token: str) -> tuple[str, str] | None:
    """``(channel, address)`` if the token is genuine, else ``None``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    channel, encoded, signature = parts
    payload = f"{channel}.{encoded}"
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()[:16]
    try:
        if not hmac.compare_digest(_unb64(signature), expected):
            return None
        return channel, _unb64(encoded).decode()
    except (ValueError, UnicodeDecodeError):
        return None
