"""What the fake Twilio holds and answers: messages, requests, faults, Twilio's JSON shapes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Final, Literal

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
    "status",
    "problem",
    "timeout",
    "accept_then_500",
    "accept_then_timeout",
    "accept_then_html",
    "html",
    "drop_connection",
]
#: The page a proxy or a captive portal answers in Twilio's place.
NOT_JSON: Final = "<html><body><h1>200 OK</h1><p>Welcome to nginx!</p></body></html>"
#: A per-test fault policy: ``(create_index, form_params) -> Fault | None``.
FaultHook = Callable[[int, Mapping[str, str]], "Fault | None"]

#: Twilio's error code and message for the plain HTTP failures the fake answers.
HTTP_ERRORS: Final = {
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
    def problem(cls, code: int, twilio_code: int) -> Fault:
        """Answer ``code`` with an RFC 9457 problem document (``type``, ``title``, ``status``,
        ``code``), the error shape of Twilio's newer APIs, before anything is recorded."""
        if not 400 <= code <= 599:
            raise ValueError(f"a problem fault needs a 4xx or 5xx code, not {code}")
        return cls("problem", http_status=code, twilio_code=twilio_code)

    @classmethod
    def html(cls) -> Fault:
        """Answer 200 with an HTML page instead of JSON (a proxy in the way); nothing is recorded."""
        return cls("html")

    @classmethod
    def accept_then_html(cls) -> Fault:
        """Record the message as accepted, then answer 200 with an HTML page instead of JSON."""
        return cls("accept_then_html")

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
    #: Text of the message.
    body: str
    #: When the fake accepted it: aware UTC, whole seconds like Twilio's (also its ``date_sent``).
    date_created: datetime
    #: Sender number, or None when a Messaging Service sent it.
    from_: str | None = None
    #: Messaging Service SID, if one was given.
    messaging_service_sid: str | None = None
    #: Twilio status; the fake leaves every message ``queued``.
    status: str = "queued"
    #: ``StatusCallback`` URL, if one was given.
    status_callback: str | None = None
    #: ``ValidityPeriod`` in seconds, if one was given.
    validity_period: int | None = None

    @classmethod
    def new(
        cls, account_sid: str, to: str, body: str, created: datetime, **fields: Any
    ) -> FakeMessage:
        """A message with a fresh SID, created at ``created`` (aware; whole seconds, like Twilio)."""
        if created.tzinfo is None:
            raise ValueError("a fake message's creation time must be aware")
        stamp = created.astimezone(UTC).replace(microsecond=0)
        return cls("SM" + uuid.uuid4().hex, account_sid, to, body, stamp, **fields)

    def to_json(self) -> dict[str, Any]:
        """This message as one JSON object (the ``--record`` line format)."""
        return {**asdict(self), "date_created": self.date_created.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FakeMessage:
        """The message :meth:`to_json` wrote."""
        return cls(**{**data, "date_created": datetime.fromisoformat(str(data["date_created"]))})


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


@dataclass(frozen=True, slots=True)
class TwilioError:
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

    def reply(self, headers: Mapping[str, str] | None = None) -> Reply:
        extra = dict(headers or {})
        if self.status == 401:
            extra["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return Reply(self.status, self.payload(), extra)


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, JSON body, extra headers (``html``: an HTML body instead)."""

    status: int
    payload: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    html: str | None = None


@dataclass(frozen=True, slots=True)
class DateFilter:
    """Twilio's inclusive ``DateSent`` filters; a bare date covers the whole UTC day."""

    after: datetime | None
    before: datetime | None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> DateFilter:
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


def resource(message: FakeMessage) -> dict[str, Any]:
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


def read_record(path: Path | str) -> list[FakeMessage]:
    """The messages a ``--record`` file holds, in the order they were accepted."""
    with Path(path).open(encoding="utf-8") as lines:
        return [FakeMessage.from_json(json.loads(line)) for line in lines if line.strip()]
