"""The fake Twilio's state and Twilio's semantics, without HTTP: what it accepts, lists and answers.

:class:`TwilioModel` keeps the accepted messages and every request, decides each
request's fault (see the package docstring) and answers it the way Twilio would;
:mod:`reminders.testing.twilio.server` puts it behind HTTP.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import random
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import urlencode

from reminders.testing.twilio.values import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_PAGE_SIZE,
    HTTP_ERRORS,
    MAX_PAGE_SIZE,
    MAX_VALIDITY_PERIOD,
    NOT_JSON,
    DateFilter,
    Endpoint,
    FakeMessage,
    Fault,
    FaultHook,
    RecordedRequest,
    Reply,
    TwilioError,
    resource,
)

_E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")


class TwilioModel:
    """Messages, requests and faults of a fake Twilio account; safe to use from many threads.

    All attributes are safe to read and set from a test thread while requests are served.
    """

    def __init__(
        self,
        *,
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
        """Configure the fake's state and behaviour.

        ``auth_token=None`` accepts any token for ``account_sid``. ``clock`` stamps
        ``date_created`` (it must return aware datetimes). ``record_path`` appends each
        accepted message as one JSON line, flushed at once.
        """
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be between 0 and 1, not {fail_rate}")
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
        self._closers: list[Callable[[], object]] = []

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
        message = FakeMessage.new(
            self.account_sid,
            to,
            body,
            date_created,
            from_=from_,
            messaging_service_sid=messaging_service_sid,
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

    def _accept(self, account: str, params: Mapping[str, str]) -> FakeMessage | TwilioError:
        """Validate a create request like Twilio does and record the message."""
        to = params.get("To", "")
        sender = params.get("From") or None
        service = params.get("MessagingServiceSid") or None
        body = params.get("Body", "")
        if not to:
            return TwilioError(400, 21604, "A 'To' phone number is required.")
        if not _E164.fullmatch(to):
            return TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if sender is None and service is None:
            return TwilioError(
                400,
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
            )
        if not body and not params.get("MediaUrl") and not params.get("ContentSid"):
            return TwilioError(400, 21602, "Message body is required.")
        validity: int | None = None
        if "ValidityPeriod" in params:
            try:
                validity = int(params["ValidityPeriod"])
            except ValueError:
                validity = 0
            if not 1 <= validity <= MAX_VALIDITY_PERIOD:
                return TwilioError(
                    400,
                    21624,
                    "Validity period can only be set to integers between 1 and 36,000 seconds.",
                )
        created = self._clock()
        if created.tzinfo is None:
            raise ValueError("FakeTwilio's clock must return aware datetimes")
        with self._accepted:
            if to in self._unsubscribed:
                return TwilioError(400, 21610, "Attempt to send to unsubscribed recipient")
            message = FakeMessage.new(
                account,
                to,
                body,
                created,
                from_=sender,
                messaging_service_sid=service,
                status_callback=params.get("StatusCallback") or None,
                validity_period=validity,
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

    def _page(self, path: str, params: Mapping[str, str]) -> dict[str, Any] | TwilioError:
        """One page of Twilio's message list, newest first."""
        try:
            matches = DateFilter.parse(params)
            size = int(params.get("PageSize", DEFAULT_PAGE_SIZE))
            page = int(params.get("Page", 0))
        except ValueError as exc:
            return TwilioError(400, 20001, f"Invalid parameter: {exc}")
        if not 1 <= size <= MAX_PAGE_SIZE or page < 0:
            return TwilioError(400, 20001, "Invalid parameter: PageSize or Page out of range")
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
            "messages": [resource(m) for m in chunk],
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


def _utc_now() -> datetime:
    return datetime.now(UTC)


def answer(
    fake: TwilioModel,
    endpoint: Endpoint,
    path: str,
    *,
    account: str,
    sid: str,
    params: Mapping[str, str],
    fault: Fault | None,
) -> Reply | None:
    """What to answer an authenticated request to ``endpoint``; None drops the connection."""
    kind = fault.kind if fault is not None else None
    if fault is not None and kind == "drop_connection":
        return None
    if fault is not None and kind == "status":
        return _fault_reply(fault)
    if fault is not None and kind == "problem":
        return _problem_reply(fault)
    if fault is not None and kind == "html":
        return Reply(200, {}, html=NOT_JSON)
    if fault is not None and kind == "timeout":
        return _fault_reply(Fault.status(503)) if fake._hold(fault.seconds) else None

    reply: Reply
    if endpoint == "create":
        accepted = fake._accept(account, params)
        if isinstance(accepted, TwilioError):
            return accepted.reply()
        reply = Reply(201, resource(accepted))
    elif endpoint == "list":
        page = fake._page(path, params)
        if isinstance(page, TwilioError):
            return page.reply()
        reply = Reply(200, page)
    else:
        message = fake._find(sid)
        if message is None:
            return not_found(path).reply()
        reply = Reply(200, resource(message))

    if fault is not None and kind == "accept_then_500":
        return _fault_reply(Fault.status(500))
    if fault is not None and kind == "accept_then_html":
        return Reply(200, {}, html=NOT_JSON)
    if fault is not None and kind == "accept_then_timeout" and not fake._hold(fault.seconds):
        return None
    return reply


def _fault_reply(fault: Fault) -> Reply:
    status = fault.http_status or 500
    code, message = HTTP_ERRORS.get(status, (status, "Error"))
    extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    return TwilioError(status, fault.twilio_code or code, message).reply(extra)


def _problem_reply(fault: Fault) -> Reply:
    status, code = fault.http_status or 500, fault.twilio_code or 20500
    return Reply(
        status,
        {
            "type": f"https://www.twilio.com/docs/api/errors/{code}",
            "title": HTTP_ERRORS.get(status, (code, "Error"))[1],
            "status": status,
            "code": code,
            "detail": "The request could not be processed",
        },
    )


def not_found(path: str) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {path} was not found")
