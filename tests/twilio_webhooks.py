"""Twilio webhooks as Twilio sends them, for every test layer: the fields and the signature.

The forms carry what Twilio's own requests carry (``AccountSid``, ``ApiVersion``, the
``SmsSid`` aliases, the places of the numbers), so a test exercises the same checks a
real webhook meets. Fictional data only: 555 numbers, the fake endpoint's account.
"""

from __future__ import annotations

import hashlib

from twilio.request_validator import RequestValidator

from reminders.channels.base import Message, Receipt
from reminders.channels.memory import MemoryChannel
from reminders.testing.twilio import DEFAULT_ACCOUNT_SID

#: The account every form names (the fake Twilio endpoint's).
ACCOUNT_SID = DEFAULT_ACCOUNT_SID
API_VERSION = "2010-04-01"
#: The clinic's fictional number.
CLINIC_NUMBER = "+12015550100"


def message_sid(seed: object) -> str:
    """A message SID as Twilio writes them (``SM`` + 32 hex digits), fixed by ``seed``."""
    return "SM" + hashlib.sha256(str(seed).encode()).hexdigest()[:32]


def inbound_form(
    sender: str,
    body: str,
    sid: str,
    *,
    to: str = CLINIC_NUMBER,
    account_sid: str = ACCOUNT_SID,
) -> dict[str, str]:
    """The form of Twilio's inbound-message webhook for a text ``body`` from ``sender``."""
    return {
        "ToCountry": "US",
        "ToState": "NJ",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "07030",
        "SmsSid": sid,
        "FromState": "NJ",
        "SmsStatus": "received",
        "FromCity": "HOBOKEN",
        "Body": body,
        "FromCountry": "US",
        "To": to,
        "ToZip": "",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": sender,
        "ApiVersion": API_VERSION,
    }


def status_form(
    sid: str,
    status: str,
    *,
    to: str,
    code: str | None = None,
    sender: str = CLINIC_NUMBER,
    account_sid: str = ACCOUNT_SID,
) -> dict[str, str]:
    """The form of Twilio's status callback reporting ``status`` for message ``sid`` to ``to``."""
    form = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": to,
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": sender,
        "ApiVersion": API_VERSION,
    }
    if code is not None:
        form["ErrorCode"] = code
    if status == "delivered":
        form["RawDlrDoneDate"] = "2611251531"
    return form


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio sends with a POST of ``params`` to ``url``."""
    return str(RequestValidator(auth_token).compute_signature(url, params))


class SidChannel(MemoryChannel):
    """The in-memory channel, answering with Twilio-shaped message SIDs (``SM`` + 32 hex)."""

    def send(self, message: Message) -> Receipt:
        """Record the message as :class:`MemoryChannel` does; the receipt's id is a SID."""
        receipt = super().send(message)
        return Receipt(provider_id=message_sid(receipt.provider_id))
