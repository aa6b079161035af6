"""A cap on request bodies, enforced before any handler reads one.

Every request passes :class:`BodyLimit` first. A ``Content-Length`` over the cap is
refused with 413 before a byte of the body is read; a body sent without one (chunked)
is read here chunk by chunk and refused as soon as it passes the cap. Only a body
within the cap reaches the application, which then reads it from memory as usual: a
client can make the process hold at most :data:`MAX_BODY` bytes per request, whatever
it sends, and the signature check never waits for megabytes it will throw away.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Largest body any endpoint accepts. Twilio's largest webhook is an inbound text of
#: 1,600 characters; percent-encoded 4-byte characters make that about 19 KB, and the
#: other fields (numbers, SIDs, places, media links) a few more. Nothing else here
#: reads a body (the one-click unsubscribe POST carries 26 bytes).
MAX_BODY: Final = 32 * 1024


class BodyLimit:
    """ASGI middleware: a request whose body passes ``limit`` bytes gets 413, unread."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, 400, b"invalid Content-Length")
                return
            if int(declared) > self.limit:
                await _refuse(send, 413, b"request body too large")
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _refuse(send, 413, b"request body too large")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            """The buffered body once, then whatever the server says next (a disconnect)."""
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(send: Send, status: int, reason: bytes) -> None:
    """Answer with ``status`` and a plain-text reason, and close the connection."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(reason)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": reason})
