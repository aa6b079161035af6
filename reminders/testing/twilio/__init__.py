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

:attr:`FakeTwilio.latency` delays every request. ``python -m reminders.testing.twilio``
runs one in its own process (see :func:`main`).
"""

from reminders.testing.twilio.model import TwilioModel
from reminders.testing.twilio.server import FakeTwilio, twilio_client
from reminders.testing.twilio.values import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    FakeMessage,
    Fault,
    RecordedRequest,
    read_record,
)

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "FakeMessage",
    "FakeTwilio",
    "Fault",
    "RecordedRequest",
    "TwilioModel",
    "read_record",
    "twilio_client",
]
