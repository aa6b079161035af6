"""A local Twilio-compatible HTTP endpoint that the real ``twilio`` client talks to.

A test peer, shipped with the package like :mod:`reminders.testing`: integration tests,
benchmarks and crash tests point the official client at it
(``client.api.base_url = fake.url``) and assert on what it recorded.

It speaks the slice of Twilio's REST API the service uses, in Twilio's shapes:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` creates a message (201, or
  Twilio's JSON error: 401/20003 bad credentials, 400/21211 invalid ``To``, 400/21603 no
  sender, 400/21602 no body, 400/21624 bad ``ValidityPeriod``, 400/21610 unsubscribed);
* ``GET /2010-04-01/Accounts/{AccountSid}/Messages.json`` lists messages newest first,
  filtered by ``To``, ``From``, ``DateSent``, ``DateSent>`` and ``DateSent<`` (the keys
  twilio-python 9 sends for ``date_sent``, ``date_sent_after`` and ``date_sent_before``,
  inclusive, as Twilio documents them), paged with ``PageSize``, ``Page`` and ``PageToken``;
* ``GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`` fetches one message.

:meth:`FakeTwilio.add_message` seeds a message without a request, with any
``date_created``: one an earlier run sent hours ago, say, for reconciliation tests.

Faults are injected per test. For each request one :class:`Fault` (or none) is chosen,
first match wins:

1. the queue filled by :meth:`FakeTwilio.fail_next` (per endpoint, create by default);
2. the :attr:`FakeTwilio.faults` hook, called for create requests only with the
   0-based index of the create request and its form parameters;
3. :attr:`FakeTwilio.fail_rate`: that fraction of create requests fails with a seeded
   mix of 500, 503, 429 (with ``Retry-After``) and "accepted, then answered 500".

:attr:`FakeTwilio.latency` delays every request. ``python -m reminders.fake_twilio``
runs one in its own process (see :func:`main`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import json
import random
import re
import secrets
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Final, Literal, Self, cast
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from reminders.sms import count_segments

#: Account SID the fake accepts unless told otherwise (fictional).
DEFAULT_ACCOUNT_SID: Final = "AC" + "fa4e" * 8
#: Auth token the fake accepts unless told otherwise.
DEFAULT_AUTH_TOKEN: Final = "fake-twilio-auth-token"  # noqa: S105 - fictional, for a local fake
#: Twilio's REST API version prefix.
API_VERSION: Final = "2010-04-01"
#: Twilio's page size when ``PageSize`` is absent, and its ceiling.
DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 1000
#: Twilio accepts ``ValidityPeriod`` between 1 and 36,000 seconds.
MAX_VALIDITY_PERIOD: Final = 36_000

#: Which requests a queued fault applies to.
Endpoint = Literal["create", "list", "fetch", "any"]
#: What a fault does; see the :class:`Fault` constructors.
FaultKind = Literal[
    "status", "timeout", "accept_then_500", "accept_then_timeout", "drop_connection"
]
#: A per-test fault policy: ``(create_index, form_params) -> Fault | None``.
FaultHook = Callable[[int, Mapping[str, str]], "Fault | None"]

_E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")
_MESSAGES: Final = re.compile(rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json")
_MESSAGE: Final = re.compile(
    rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json"
)
#: Twilio's error code and message for the plain HTTP failures the fake answers.
_HTTP_ERRORS: Final = {
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure; build it with the class methods, not the constructor."""

    #: What happens to the request.
    kind: FaultKind
    #: HTTP status answered by a ``status`` fault.
    http_status: int | None = None
    #: Twilio error code in the JSON body (defaults per status: 429 -> 20429, 5xx -> 20500/20503).
    twilio_code: int | None = None
    #: ``Retry-After`` header value in seconds, if any.
    retry_after: int | None = None
    #: How long ``timeout`` and ``accept_then_timeout`` hold the request.
    seconds: float = 0.0

    @classmethod
    def status(
        cls, code: int, twilio_code: int | None = None, retry_after: int | None = None
    ) -> Fault:
        """Answer ``code`` with Twilio's JSON error body, before anything is recorded."""
        if not 400 <= code <= 599:
            raise ValueError(f"a status fault needs a 4xx or 5xx code, not {code}")
        return cls("status", http_status=code, twilio_code=twilio_code, retry_after=retry_after)

    @classmethod
    def timeout(cls, seconds: float) -> Fault:
        """Hold the request ``seconds`` (longer than the client's timeout), then answer 503.

        Nothing is recorded: the request never took effect, so a resend is safe.
        """
        return cls("timeout", seconds=seconds)

    @classmethod
    def accept_then_500(cls) -> Fault:
        """Record the message as accepted, then answer 500 (Twilio's "in doubt" case)."""
        return cls("accept_then_500")

    @classmethod
    def accept_then_timeout(cls, seconds: float) -> Fault:
        """Record the message as accepted, then hold the answer ``seconds``."""
        return cls("accept_then_timeout", seconds=seconds)

    @classmethod
    def drop_connection(cls) -> Fault:
        """Close the connection without answering, before anything is recorded."""
        return cls("drop_connection")


@dataclass(frozen=True, slots=True)
class FakeMessage:
    """A message the fake accepted, as Twilio would hold it."""

    #: Message SID, ``SM`` and 32 hex digits.
    sid: str
    #: Account the message was created under.
    account_sid: str
    #: Recipient in E.164.
    to: str
    #: Sender number, or None when a Messaging Service sent it.
    from_: str | None
    #: Messaging Service SID, if one was given.
    messaging_service_sid: str | None
    #: Text of the message.
    body: str
    #: ``StatusCallback`` URL, if one was given.
    status_callback: str | None
    #: ``ValidityPeriod`` in seconds, if one was given.
    validity_period: int | None
    #: When the fake accepted it: aware UTC, whole seconds like Twilio's (also its ``date_sent``).
    date_created: datetime
    #: Twilio status; the fake leaves every message ``queued``.
    status: str = "queued"

    def to_json(self) -> dict[str, Any]:
        """This message as one JSON object (the ``--record`` line format)."""
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "from_": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "body": self.body,
            "status_callback": self.status_callback,
            "validity_period": self.validity_period,
            "date_created": self.date_created.isoformat(),
            "status": self.status,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FakeMessage:
        """The message :meth:`to_json` wrote."""
        return cls(
            sid=str(data["sid"]),
            account_sid=str(data["account_sid"]),
            to=str(data["to"]),
            from_=data.get("from_"),
            messaging_service_sid=data.get("messaging_service_sid"),
            body=str(data["body"]),
            status_callback=data.get("status_callback"),
            validity_period=data.get("validity_period"),
            date_created=datetime.fromisoformat(str(data["date_created"])),
            status=str(data.get("status", "queued")),
        )


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received, whatever became of it."""

    #: Position in :attr:`FakeTwilio.requests`.
    index: int
    #: HTTP method.
    method: str
    #: URL path, without the query string.
    path: str
    #: Query and form parameters (first value of each; the form wins on a clash).
    params: Mapping[str, str]
    #: Request headers (the ``Authorization`` header included).
    headers: Mapping[str, str]
    #: The fault applied, or None.
    fault: Fault | None
    #: HTTP status answered; None while held, or when the connection was dropped.
    status: int | None = None
    #: Headers of the answer (``Retry-After`` among them when one was sent).
    response_headers: Mapping[str, str] = field(default_factory=dict)


class FakeTwilio:
    """A Twilio-compatible endpoint on a background thread; a context manager.

    ``with FakeTwilio() as fake:`` starts it on 127.0.0.1 with a free port and stops it,
    closing every connection, on exit. All attributes are safe to read and set from the
    test thread while requests are served.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str | None = DEFAULT_AUTH_TOKEN,
        unsubscribed: Iterable[str] = (),
        faults: FaultHook | None = None,
        latency: float = 0.0,
        fail_rate: float = 0.0,
        seed: int | None = None,
        fail_rate_retry_after: int | None = 1,
        record_path: Path | str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Configure the fake; :meth:`start` (or ``with``) binds and serves.

        ``auth_token=None`` accepts any token for ``account_sid``. ``clock`` stamps
        ``date_created`` (it must return aware datetimes). ``record_path`` appends each
        accepted message as one JSON line, flushed at once.
        """
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be between 0 and 1, not {fail_rate}")
        self._host = host
        self._port = port
        #: Account SID the credentials and URLs must name.
        self.account_sid = account_sid
        #: Auth token the credentials must carry (None: any).
        self.auth_token = auth_token
        #: Fault hook for create requests; see the module docstring.
        self.faults: FaultHook | None = faults
        #: Seconds added to every request.
        self.latency = latency
        #: Fraction of create requests failed at random (seeded).
        self.fail_rate = fail_rate
        #: ``Retry-After`` of the 429s that ``fail_rate`` answers.
        self.fail_rate_retry_after = fail_rate_retry_after
        self._clock = clock or _utc_now
        self._record_path = Path(record_path) if record_path is not None else None
        self._record: IO[str] | None = None
        # Fault injection is a test device, not security: a seeded, reproducible RNG is the point.
        self._rng = random.Random(seed)  # noqa: S311
        self._unsubscribed = set(unsubscribed)
        self._messages: list[FakeMessage] = []
        self._requests: list[RecordedRequest] = []
        self._queue: collections.deque[tuple[Fault, Endpoint]] = collections.deque()
        self._creates = 0
        # Reentrant: a fault hook may read fake.messages while the fake decides.
        self._lock = threading.RLock()
        self._accepted = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._closers: list[Callable[[], object]] = []

    # -- lifecycle ---------------------------------------------------------------------

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

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what a test reads -------------------------------------------------------------

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

    @property
    def messages(self) -> list[FakeMessage]:
        """A copy of the accepted (and added) messages, in the order the fake took them."""
        with self._lock:
            return list(self._messages)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[FakeMessage]:
        """Block until ``count`` messages are accepted; raises TimeoutError after ``timeout``."""
        with self._accepted:
            if not self._accepted.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(
                    f"FakeTwilio accepted {len(self._messages)} messages, not {count}, "
                    f"within {timeout} s"
                )
            return list(self._messages)

    # -- what a test sets --------------------------------------------------------------

    def fail_next(self, fault: Fault, times: int = 1, *, endpoint: Endpoint = "create") -> None:
        """Apply ``fault`` to the next ``times`` requests to ``endpoint``."""
        with self._lock:
            self._queue.extend([(fault, endpoint)] * times)

    def add_message(
        self,
        to: str,
        body: str,
        *,
        date_created: datetime,
        from_: str | None = None,
        messaging_service_sid: str | None = None,
    ) -> FakeMessage:
        """Hold a message as if accepted at ``date_created`` (aware), without a request.

        It is listed and fetched like any other (newest ``date_created`` first) and
        recorded like them; no fault, auth check or validation applies.
        """
        if date_created.tzinfo is None:
            raise ValueError("date_created must be an aware datetime")
        message = FakeMessage(
            sid="SM" + uuid.uuid4().hex,
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            messaging_service_sid=messaging_service_sid,
            body=body,
            status_callback=None,
            validity_period=None,
            date_created=date_created.astimezone(UTC).replace(microsecond=0),
        )
        with self._accepted:
            self._hold_message(message)
        return message

    def unsubscribe(self, *numbers: str) -> None:
        """Answer 21610 (unsubscribed recipient) to messages for ``numbers``."""
        with self._lock:
            self._unsubscribed.update(numbers)

    def reset(self) -> None:
        """Forget messages, requests, queued faults and unsubscribed numbers."""
        with self._lock:
            self._messages.clear()
            self._requests.clear()
            self._queue.clear()
            self._unsubscribed.clear()
            self._creates = 0

    # -- used by the request handler ---------------------------------------------------

    def _check_auth(self, account: str, header: str | None) -> bool:
        if account != self.account_sid or not header or not header.startswith("Basic "):
            return False
        try:
            user, _, token = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, account) and (
            self.auth_token is None or secrets.compare_digest(token, self.auth_token)
        )

    def _admit(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        endpoint: Endpoint | None,
    ) -> RecordedRequest:
        """Choose the request's fault and record the request, atomically."""
        with self._lock:
            fault = None
            if endpoint is not None:
                fault = self._pop_queued(endpoint)
                if endpoint == "create":
                    index, self._creates = self._creates, self._creates + 1
                    if fault is None and self.faults is not None:
                        fault = self.faults(index, params)
                    if fault is None and self.fail_rate and self._rng.random() < self.fail_rate:
                        fault = self._rng.choice(
                            [
                                Fault.status(500),
                                Fault.status(503),
                                Fault.status(429, retry_after=self.fail_rate_retry_after),
                                Fault.accept_then_500(),
                            ]
                        )
            recorded = RecordedRequest(
                index=len(self._requests),
                method=method,
                path=path,
                params=dict(params),
                headers=dict(headers),
                fault=fault,
            )
            self._requests.append(recorded)
            return recorded

    def _pop_queued(self, endpoint: Endpoint) -> Fault | None:
        for i, (fault, wanted) in enumerate(self._queue):
            if wanted in (endpoint, "any"):
                del self._queue[i]
                return fault
        return None

    def _answered(self, index: int, status: int, headers: Mapping[str, str]) -> None:
        with self._lock:
            if index < len(self._requests) and self._requests[index].index == index:
                self._requests[index] = replace(
                    self._requests[index], status=status, response_headers=dict(headers)
                )

    def _accept(self, account: str, params: Mapping[str, str]) -> FakeMessage | _Error:
        """Validate a create request like Twilio does and record the message."""
        to = params.get("To", "")
        sender = params.get("From") or None
        service = params.get("MessagingServiceSid") or None
        body = params.get("Body", "")
        if not to:
            return _Error(400, 21604, "A 'To' phone number is required.")
        if not _E164.fullmatch(to):
            return _Error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if sender is None and service is None:
            return _Error(
                400,
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
            )
        if not body and not params.get("MediaUrl") and not params.get("ContentSid"):
            return _Error(400, 21602, "Message body is required.")
        validity: int | None = None
        if "ValidityPeriod" in params:
            try:
                validity = int(params["ValidityPeriod"])
            except ValueError:
                validity = 0
            if not 1 <= validity <= MAX_VALIDITY_PERIOD:
                return _Error(
                    400,
                    21624,
                    "Validity period can only be set to integers between 1 and 36,000 seconds.",
                )
        created = self._clock()
        if created.tzinfo is None:
            raise ValueError("FakeTwilio's clock must return aware datetimes")
        with self._accepted:
            if to in self._unsubscribed:
                return _Error(400, 21610, "Attempt to send to unsubscribed recipient")
            message = FakeMessage(
                sid="SM" + uuid.uuid4().hex,
                account_sid=account,
                to=to,
                from_=sender,
                messaging_service_sid=service,
                body=body,
                status_callback=params.get("StatusCallback") or None,
                validity_period=validity,
                date_created=created.astimezone(UTC).replace(microsecond=0),
            )
            self._hold_message(message)
        return message

    def _hold_message(self, message: FakeMessage) -> None:
        """Keep, record and announce an accepted message; the caller holds the lock."""
        self._messages.append(message)
        if self._record is not None:
            self._record.write(json.dumps(message.to_json(), ensure_ascii=False) + "\n")
            self._record.flush()
        self._accepted.notify_all()

    def _find(self, sid: str) -> FakeMessage | None:
        with self._lock:
            return next((m for m in self._messages if m.sid == sid), None)

    def _page(self, path: str, params: Mapping[str, str]) -> dict[str, Any] | _Error:
        """One page of Twilio's message list, newest first."""
        try:
            matches = _DateFilter.parse(params)
            size = int(params.get("PageSize", DEFAULT_PAGE_SIZE))
            page = int(params.get("Page", 0))
        except ValueError as exc:
            return _Error(400, 20001, f"Invalid parameter: {exc}")
        if not 1 <= size <= MAX_PAGE_SIZE or page < 0:
            return _Error(400, 20001, "Invalid parameter: PageSize or Page out of range")
        with self._lock:
            ordered = sorted(enumerate(self._messages), key=lambda p: (p[1].date_created, p[0]))
        found = [
            m
            for _, m in reversed(ordered)
            if ("To" not in params or m.to == params["To"])
            and ("From" not in params or m.from_ == params["From"])
            and matches(m.date_created)
        ]
        # A PageToken names the last message of the previous page, so messages created
        # between two page requests neither repeat nor vanish (a Page offset would shift).
        token = params.get("PageToken", "")
        sids = [m.sid for m in found]
        start = sids.index(token[2:]) + 1 if token[2:] in sids else page * size
        chunk = found[start : start + size]
        filters = {k: v for k, v in params.items() if k not in {"Page", "PageSize", "PageToken"}}

        def uri(**extra: str | int) -> str:
            return f"{path}?{urlencode({**filters, 'PageSize': size, **extra})}"

        more = start + size < len(found)
        return {
            "messages": [_resource(m) for m in chunk],
            "end": start + len(chunk) - 1 if chunk else start,
            "first_page_uri": uri(Page=0),
            "next_page_uri": uri(Page=page + 1, PageToken="PA" + chunk[-1].sid) if more else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": uri(Page=page - 1) if page > 0 else None,
            "start": start,
            "uri": uri(Page=page, **({"PageToken": token} if token else {})),
        }

    def _hold(self, seconds: float) -> bool:
        """Sleep ``seconds``; False if the fake is stopping (the request must be dropped)."""
        return seconds <= 0 or not self._stopping.wait(seconds)

    def _close_on_stop(self, close: Callable[[], object]) -> None:
        self._closers.append(close)


@dataclass(frozen=True, slots=True)
class _Error:
    """A Twilio JSON error answer."""

    status: int
    code: int
    message: str

    def payload(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }

    def reply(self, headers: Mapping[str, str] | None = None) -> _Reply:
        extra = dict(headers or {})
        if self.status == 401:
            extra["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return _Reply(self.status, self.payload(), extra)


@dataclass(frozen=True, slots=True)
class _Reply:
    """An HTTP answer: status, JSON body, extra headers."""

    status: int
    payload: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _DateFilter:
    """Twilio's inclusive ``DateSent`` filters; a bare date covers the whole UTC day."""

    after: datetime | None
    before: datetime | None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> _DateFilter:
        after = before = None
        if "DateSent" in params:
            after, before = _bounds(params["DateSent"])
        if "DateSent>" in params:
            after = _bounds(params["DateSent>"])[0]
        if "DateSent<" in params:
            before = _bounds(params["DateSent<"])[1]
        return cls(after, before)

    def __call__(self, when: datetime) -> bool:
        return (self.after is None or when >= self.after) and (
            self.before is None or when <= self.before
        )


def _bounds(text: str) -> tuple[datetime, datetime]:
    """First and last instant ``text`` names: a whole UTC day for a date, else one second."""
    if len(text) == 10:
        day = date.fromisoformat(text)
        first = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return first, first + timedelta(days=1, microseconds=-1)
    when = datetime.fromisoformat(text)
    # twilio-python formats datetimes as "%Y-%m-%dT%H:%M:%SZ"; anything naive is UTC too.
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    when = when.replace(microsecond=0)
    return when, when + timedelta(seconds=1, microseconds=-1)


def _resource(message: FakeMessage) -> dict[str, Any]:
    """A message in Twilio's JSON shape."""
    uri = f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/{message.sid}"
    stamp = format_datetime(message.date_created)
    return {
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": stamp,
        "date_sent": stamp,
        "date_updated": stamp,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": message.from_,
        "messaging_service_sid": message.messaging_service_sid,
        "num_media": "0",
        "num_segments": str(count_segments(message.body).segments),
        "price": None,
        "price_unit": "USD",
        "sid": message.sid,
        "status": message.status,
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": message.to,
        "uri": f"{uri}.json",
    }


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
        error: _Error | None = None
        account, sid = "", ""
        if found := _MESSAGES.fullmatch(url.path):
            account = found["account"]
            endpoint = "create" if method == "POST" else "list"
        elif (found := _MESSAGE.fullmatch(url.path)) and method == "GET":
            account, sid, endpoint = found["account"], found["sid"], "fetch"
        else:
            error = _not_found(url.path)
        if endpoint is not None and not fake._check_auth(
            account, self.headers.get("Authorization")
        ):
            endpoint, error = None, _Error(401, 20003, "Authenticate")
        recorded = fake._admit(method, url.path, params, dict(self.headers.items()), endpoint)

        reply: _Reply | None = None  # None: drop the connection without answering
        if not fake._hold(fake.latency):
            pass  # stopping
        elif error is not None or endpoint is None:
            reply = (error or _not_found(url.path)).reply()
        else:
            reply = _answer(
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
        data = json.dumps(reply.payload).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
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


def _answer(
    fake: FakeTwilio,
    endpoint: Endpoint,
    path: str,
    *,
    account: str,
    sid: str,
    params: Mapping[str, str],
    fault: Fault | None,
) -> _Reply | None:
    """What to answer an authenticated request to ``endpoint``; None drops the connection."""
    kind = fault.kind if fault is not None else None
    if fault is not None and kind == "drop_connection":
        return None
    if fault is not None and kind == "status":
        return _fault_reply(fault)
    if fault is not None and kind == "timeout":
        return _fault_reply(Fault.status(503)) if fake._hold(fault.seconds) else None

    reply: _Reply
    if endpoint == "create":
        accepted = fake._accept(account, params)
        if isinstance(accepted, _Error):
            return accepted.reply()
        reply = _Reply(201, _resource(accepted))
    elif endpoint == "list":
        page = fake._page(path, params)
        if isinstance(page, _Error):
            return page.reply()
        reply = _Reply(200, page)
    else:
        message = fake._find(sid)
        if message is None:
            return _not_found(path).reply()
        reply = _Reply(200, _resource(message))

    if fault is not None and kind == "accept_then_500":
        return _fault_reply(Fault.status(500))
    if fault is not None and kind == "accept_then_timeout" and not fake._hold(fault.seconds):
        return None
    return reply


def _fault_reply(fault: Fault) -> _Reply:
    status = fault.http_status or 500
    code, message = _HTTP_ERRORS.get(status, (status, "Error"))
    extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    return _Error(status, fault.twilio_code or code, message).reply(extra)


def _not_found(path: str) -> _Error:
    return _Error(404, 20404, f"The requested resource {path} was not found")


def _first_values(parsed: Mapping[str, Sequence[str]]) -> dict[str, str]:
    return {key: values[0] for key, values in parsed.items() if values}


def read_record(path: Path | str) -> list[FakeMessage]:
    """The messages a ``--record`` file holds, in the order they were accepted."""
    with Path(path).open(encoding="utf-8") as lines:
        return [FakeMessage.from_json(json.loads(line)) for line in lines if line.strip()]


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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reminders.fake_twilio``: serve until SIGTERM or SIGINT.

    Prints the base URL on stdout (one line) once it accepts connections.
    """
    parser = argparse.ArgumentParser(
        prog="python -m reminders.fake_twilio",
        description="A local Twilio-compatible HTTP endpoint for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of every request")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="fraction of sends to fail")
    parser.add_argument("--seed", type=int, default=None, help="seed of the failure mix")
    parser.add_argument("--record", type=Path, help="append accepted messages as JSON lines")
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN, help="'' accepts any token")
    parser.add_argument(
        "--unsubscribed", action="append", default=[], help="number answered 21610 (repeatable)"
    )
    args = parser.parse_args(argv)

    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    with FakeTwilio(
        host=args.host,
        port=args.port,
        account_sid=args.account_sid,
        auth_token=args.auth_token or None,
        unsubscribed=args.unsubscribed,
        latency=args.latency_ms / 1000,
        fail_rate=args.fail_rate,
        seed=args.seed,
        record_path=args.record,
    ) as fake:
        print(fake.url, flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
