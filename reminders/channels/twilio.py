"""SMS through Twilio's Messages API with the official client.

Twilio's answers are classified here and nowhere else:

* transient: HTTP 429 (honouring ``Retry-After``), a refused or timed-out connection;
* in doubt: 5xx and read timeouts on the create call (Twilio may have accepted the
  message: "accepted, then answered 500"), and a connection dropped after the request
  went out. The dispatcher reconciles these with :meth:`TwilioChannel.reconcile`
  before any resend;
* permanent: every other 4xx, notably 21211 (invalid number), 21614 (not a mobile
  number), 21610 (recipient unsubscribed, which also opts the number out).

Errors in the problem-document shape of Twilio's newer APIs (RFC 9457) are classified
by their status and code like the usual ones. A 2xx answer whose body is not Twilio's
JSON (a proxy or captive portal in the way), or that names no message SID, is in doubt
(``bad-response``): the request got through, so the message may exist.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final

import requests
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from reminders.channels.base import Message, Receipt, body_digest
from reminders.errors import DeliveryError, InDoubtError, PermanentError, TransientError

#: Twilio's own error codes that mean "never retry this recipient".
PERMANENT_CODES: Final = {
    21211: "invalid 'To' phone number",
    21214: "'To' number cannot be reached",
    21408: "no permission to send to this region",
    21606: "'From' number cannot send SMS",
    21610: "recipient unsubscribed (replied STOP)",
    21612: "'To' number cannot receive from this sender",
    21614: "'To' number is not a mobile number",
    30003: "unreachable handset",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
}
#: Codes after which the number must be treated as opted out of SMS.
OPT_OUT_CODES: Final = frozenset({21610})
#: How far before an in-doubt attempt a matching message still counts as that attempt's.
RECONCILE_SLACK: Final = timedelta(hours=1)
#: Twilio accepts ValidityPeriod between 1 second and 36,000 seconds (10 hours).
MAX_VALIDITY: Final = 36_000

# The client logs every request's URL and query (phone numbers) at INFO: keep it quiet.
_quiet = logging.getLogger("reminders.twilio.http")
_quiet.setLevel(logging.WARNING)


def classify(
    status: int, code: int | None, message: str, retry_after: float | None = None
) -> DeliveryError:
    """Map a Twilio REST error to the error the dispatcher acts on."""
    code_text = str(code) if code is not None else str(status)
    if status == 429:
        return TransientError(
            f"Twilio rate limit: {message}", code=code_text, retry_after=retry_after
        )
    if status >= 500:
        return InDoubtError(
            f"Twilio answered {status}: {message}", code=code_text, retry_after=retry_after
        )
    if status in (401, 403):
        # Our configuration, not the patient's number: retry (and alert) until it is fixed.
        return TransientError(
            f"Twilio rejected the credentials ({status}): {message}", code=code_text
        )
    reason = PERMANENT_CODES.get(code or 0, message)
    return PermanentError(
        f"Twilio {code_text}: {reason}", code=code_text, opted_out=(code in OPT_OUT_CODES)
    )


def classify_transport(exc: requests.RequestException) -> DeliveryError:
    """A failure below HTTP: before the request left (transient) or after (in doubt)."""
    if isinstance(exc, requests.ConnectTimeout):
        return TransientError(
            f"Twilio connect timeout: {type(exc).__name__}", code="connect-timeout"
        )
    if isinstance(exc, requests.ReadTimeout):
        return InDoubtError(
            "Twilio did not answer in time after the request was sent", code="read-timeout"
        )
    if isinstance(exc, requests.ConnectionError) and _refused(exc):
        return TransientError("Twilio endpoint refused the connection", code="connection-refused")
    return InDoubtError(
        f"Twilio connection failed mid-request: {type(exc).__name__}", code="connection"
    )


def _refused(exc: BaseException) -> bool:
    """Whether the connection was never made (refused, unresolvable): nothing was sent."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or type(current).__name__ in (
            "NewConnectionError",
            "NameResolutionError",
        ):
            return True
        linked = [
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            *current.args,
        ]
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return False


@dataclass(frozen=True, slots=True)
class TwilioSettings:
    """Everything the channel needs; built from the environment by :mod:`reminders.settings`."""

    #: Account SID (AC...).
    account_sid: str
    #: Auth token (secret; never printed).
    auth_token: str
    #: Sender number in E.164, or None when a Messaging Service sends.
    from_number: str | None = None
    #: Messaging Service SID (MG...), used instead of a From number.
    messaging_service_sid: str | None = None
    #: API base URL; the default is Twilio's.
    api_base_url: str | None = None
    #: Public base URL of this service, for status callbacks.
    public_url: str | None = None
    #: Seconds to wait for Twilio's answer.
    timeout: float = 10.0

    def __repr__(self) -> str:
        return f"TwilioSettings(account_sid={self.account_sid[:6]}..., auth_token=***)"


class TwilioChannel:
    """Sends SMS with the official Twilio client; one client per worker thread."""

    name = "sms"

    def __init__(self, settings: TwilioSettings) -> None:
        self.settings = settings
        self._local = threading.local()

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            http = TwilioHttpClient(
                timeout=self.settings.timeout,
                logger=_quiet,
                request_hooks={"response": [self._remember_headers]},
            )
            client = Client(self.settings.account_sid, self.settings.auth_token, http_client=http)
            if self.settings.api_base_url:
                client.api.base_url = self.settings.api_base_url.rstrip("/")
            self._local.client = client
        return client

    def _remember_headers(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        self._local.retry_after = _retry_after(response.headers.get("Retry-After"))

    def send(self, message: Message) -> Receipt:
        """Create the message at Twilio; raises a classified DeliveryError."""
        params: dict[str, Any] = {"to": message.to, "body": message.text}
        if self.settings.messaging_service_sid:
            params["messaging_service_sid"] = self.settings.messaging_service_sid
        else:
            params["from_"] = self.settings.from_number
        if self.settings.public_url:
            params["status_callback"] = (
                f"{self.settings.public_url}/twilio/status?reminder={message.reminder_id}"
            )
        if message.validity_seconds is not None:
            params["validity_period"] = min(max(message.validity_seconds, 1), MAX_VALIDITY)
        self._local.retry_after = None
        try:
            created = self._client().messages.create(**params)
        except TwilioRestException as exc:
            raise classify(exc.status, exc.code, exc.msg, self._retry_after()) from None
        except TwilioServiceException as exc:
            detail = exc.detail or exc.title
            raise classify(exc.status, exc.code, detail, self._retry_after()) from None
        except requests.RequestException as exc:
            raise classify_transport(exc) from None
        except json.JSONDecodeError:
            raise InDoubtError(
                "Twilio answered with a body that is not JSON (a proxy in the way?); "
                "the message may have been created",
                code="bad-response",
            ) from None
        if not created.sid:
            raise InDoubtError("Twilio's answer names no message SID", code="bad-response")
        return Receipt(provider_id=str(created.sid))

    def _retry_after(self) -> float | None:
        """The ``Retry-After`` of this thread's last answer (set by the response hook)."""
        return getattr(self._local, "retry_after", None)

    def close(self) -> None:
        """Nothing to release between batches: each worker thread keeps its client."""

    def reconcile(
        self, message: Message, since: datetime, digests: frozenset[str]
    ) -> Receipt | None:
        """Find a message Twilio already accepted for this reminder since ``since``.

        Lists the newest messages to the number (Twilio leaves ``date_sent`` empty
        while a message is queued, so the filter is on ``date_created``, here) and
        matches one created since an hour before the attempt whose text is one the
        in-doubt attempts sent (``digests``) or this message's: an hour is enough
        slack for clock skew and far less than the week between repeats of a text.
        """
        floor = since - RECONCILE_SLACK
        wanted = digests | {body_digest(message.text)}
        try:
            found = self._client().messages.list(to=message.to, page_size=50, limit=100)
        except TwilioRestException as exc:
            code = str(exc.code or exc.status)
            raise TransientError(
                f"Twilio list failed ({exc.status}): {exc.msg}", code=code
            ) from None
        except TwilioServiceException as exc:
            code = str(exc.code or exc.status)
            raise TransientError(
                f"Twilio list failed ({exc.status}): {exc.detail or exc.title}", code=code
            ) from None
        except json.JSONDecodeError:
            raise TransientError(
                "Twilio's message list is not JSON (a proxy in the way?)", code="bad-response"
            ) from None
        except TwilioException as exc:  # a failed page fetch raises the base class
            raise TransientError(f"Twilio list failed: {exc}", code="list") from None
        except requests.RequestException as exc:
            error = classify_transport(exc)
            raise TransientError(str(error), code=error.code) from None
        for candidate in found:
            created = candidate.date_created
            if created is not None and created < floor:
                continue
            if body_digest(candidate.body or "") in wanted:
                return Receipt(provider_id=str(candidate.sid))
        return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max((when - datetime.now(UTC)).total_seconds(), 0.0)
