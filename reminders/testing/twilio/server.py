"""The fake Twilio behind HTTP, on a background thread, for the real ``twilio`` client."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Self, cast
from urllib.parse import parse_qs, urlsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from reminders.testing.peer import Peer
from reminders.testing.twilio.model import TwilioModel, answer, not_found
from reminders.testing.twilio.values import (
    API_VERSION,
    DEFAULT_AUTH_TOKEN,
    Endpoint,
    Reply,
    TwilioError,
)

_MESSAGES: Final = re.compile(rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json")
_MESSAGE: Final = re.compile(
    rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json"
)


class FakeTwilio(TwilioModel, Peer):
    """A Twilio-compatible endpoint on a background thread; a context manager.

    ``with FakeTwilio() as fake:`` starts it on 127.0.0.1 with a free port and stops it,
    closing every connection, on exit.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        """Configure the fake (``options``: see :class:`TwilioModel`); :meth:`start` serves."""
        super().__init__(**options)
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind the port and serve on a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("FakeTwilio is already started")
        self._stopping.clear()
        self._server = _Server((self._host, self._port), self)
        if self._record_path is not None:
            self._record = self._record_path.open("a", encoding="utf-8")
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-twilio-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake held requests, close every connection and the record file."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections(timeout=5.0)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        for close in self._closers:
            close()
        self._closers.clear()
        with self._lock:
            if self._record is not None:
                self._record.close()
                self._record = None

    @property
    def running(self) -> bool:
        """Whether it serves now."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("FakeTwilio is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for ``client.api.base_url``, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self._host}:{self.port}"


class _Server(ThreadingHTTPServer):
    """Threaded server that can close its keep-alive connections on stop."""

    daemon_threads = True
    allow_reuse_address = True
    # Benchmarks open bursts of connections at once; the default backlog of 5 refuses them.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], fake: FakeTwilio) -> None:
        self.fake = fake
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Condition()
        super().__init__(address, _Handler)

    def process_request_thread(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        conn = request if isinstance(request, socket.socket) else request[1]
        with self._open_lock:
            self._open.add(conn)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(conn)
                self._open_lock.notify_all()

    def close_connections(self, timeout: float) -> None:
        """Shut down every open connection and wait for their threads to close them."""
        with self._open_lock:
            for conn in self._open:
                with contextlib.suppress(OSError):  # already closed by the peer
                    conn.shutdown(socket.SHUT_RDWR)
            self._open_lock.wait_for(lambda: not self._open, timeout)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        # A client that gave up (timeout) or a stop that cut the connection is expected here.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.fake._stopping.is_set():
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeTwilio/1.0"
    # Headers and body leave in two writes; with Nagle on, a keep-alive client waits ~40 ms
    # for the delayed ACK on every request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a benchmark makes thousands of requests."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake = cast(_Server, self.server).fake
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        params = _first_values(parse_qs(url.query, keep_blank_values=True))
        if "form-urlencoded" in self.headers.get("Content-Type", ""):
            params.update(_first_values(parse_qs(body, keep_blank_values=True)))

        endpoint: Endpoint | None = None
        error: TwilioError | None = None
        account, sid = "", ""
        if found := _MESSAGES.fullmatch(url.path):
            account = found["account"]
            endpoint = "create" if method == "POST" else "list"
        elif (found := _MESSAGE.fullmatch(url.path)) and method == "GET":
            account, sid, endpoint = found["account"], found["sid"], "fetch"
        else:
            error = not_found(url.path)
        if endpoint is not None and not fake._check_auth(
            account, self.headers.get("Authorization")
        ):
            endpoint, error = None, TwilioError(401, 20003, "Authenticate")
        recorded = fake._admit(method, url.path, params, dict(self.headers.items()), endpoint)

        reply: Reply | None = None  # None: drop the connection without answering
        if not fake._hold(fake.latency):
            pass  # stopping
        elif error is not None or endpoint is None:
            reply = (error or not_found(url.path)).reply()
        else:
            reply = answer(
                fake,
                endpoint,
                url.path,
                account=account,
                sid=sid,
                params=params,
                fault=recorded.fault,
            )
        if reply is None:
            self._drop()
            return
        html = reply.html is not None
        data = (reply.html or "").encode() if html else json.dumps(reply.payload).encode()
        headers = {
            "Content-Type": f"{'text/html' if html else 'application/json'}; charset=utf-8",
            "Content-Length": str(len(data)),
            "Twilio-Request-Id": "RQ" + uuid.uuid4().hex,
            **reply.headers,
        }
        fake._answered(recorded.index, reply.status, headers)
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):  # the peer may already be gone
            self.connection.shutdown(socket.SHUT_RDWR)


def _first_values(parsed: Mapping[str, Sequence[str]]) -> dict[str, str]:
    return {key: values[0] for key, values in parsed.items() if values}


def twilio_client(
    fake: FakeTwilio,
    *,
    timeout: float | None = None,
    http_client: TwilioHttpClient | None = None,
) -> Client:
    """A real ``twilio.rest.Client`` pointed at ``fake``, with its credentials.

    ``timeout`` builds a ``TwilioHttpClient(timeout=...)``; pass ``http_client`` instead to
    use your own (with request hooks, say). Its HTTP session is closed when the fake stops,
    so tests leave no stray sockets.
    """
    http = http_client if http_client is not None else TwilioHttpClient(timeout=timeout)
    client = Client(fake.account_sid, fake.auth_token or DEFAULT_AUTH_TOKEN, http_client=http)
    client.api.base_url = fake.url
    if http.session is not None:
        fake._close_on_stop(http.session.close)
    return client
