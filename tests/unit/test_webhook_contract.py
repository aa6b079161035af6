"""What a Twilio webhook must be (reminders.web.webhook), the callback rule, and tokens: no HTTP, no database.

Each refused form here is signed correctly, so only the check under test can refuse it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

import pytest

from reminders import lifecycle, tokens
from reminders.lifecycle import CallbackDecision, ReminderStatus
from reminders.web.webhook import INBOUND, STATUS, Contract, Refusal, verify
from tests.twilio_webhooks import ACCOUNT_SID, inbound_form, message_sid, signature, status_form

PUBLIC_URL = "https://reminders.example.com"
TOKEN = "unit-test-auth-token"
SID = message_sid(1)


def check(
    contract: Contract,
    pairs: list[tuple[str, str]],
    query: str = "",
    *,
    signed: str | None = None,
    account_sid: str | None = ACCOUNT_SID,
) -> dict[str, str] | Refusal:
    """``verify`` a form body of ``pairs`` posted to ``contract``'s path, signed for it unless ``signed``."""
    url = PUBLIC_URL + contract.path + (f"?{query}" if query else "")
    return verify(
        contract,
        urlencode(pairs).encode(),
        query,
        public_url=PUBLIC_URL,
        signature=signed if signed is not None else signature(TOKEN, url, dict(pairs)),
        auth_token=TOKEN,
        account_sid=account_sid,
    )


def test_twilios_own_inbound_text_and_status_callback_verify_to_their_parameters() -> None:
    """A signed inbound text and a signed status callback, as Twilio sends them, verify to their fields."""
    inbound = inbound_form("+12015550123", "STOP", SID)
    assert check(INBOUND, list(inbound.items())) == inbound
    status = status_form(SID, "delivered", to="+12015550123")
    assert check(STATUS, list(status.items()), "reminder=31") == status


@pytest.mark.parametrize(
    ("signed", "reason"),
    [("", "no signature"), ("dGhpcyBpcyBub3QgYSBzaWduYXR1cmU=", "a forged one")],
)
def test_a_webhook_without_a_valid_signature_is_refused_with_403(signed: str, reason: str) -> None:
    """A Twilio-shaped form with no signature or a forged one gets 403, whatever else is right."""
    refusal = check(INBOUND, list(inbound_form("+12015550123", "STOP", SID).items()), signed=signed)
    assert isinstance(refusal, Refusal), reason
    assert refusal.status == 403


INBOUND_REFUSALS = {
    "MessageSi": ("unknown parameter", "MessageSi"),
    "1AccountSid": ("unknown parameter", "1AccountSid"),
    "no MessageSid": ("missing parameter", "MessageSid"),
    "no Body": ("missing parameter", "Body"),
    "twice": ("parameter given twice", "To"),
    "MM sid too long": ("malformed parameter", "MessageSid"),
    "other account": ("another account", "AccountSid"),
    "SmsSid differs": ("malformed parameter", "SmsSid"),
    "query": ("unexpected query string", None),
}


def inbound_variant(case: str) -> tuple[list[tuple[str, str]], str]:
    """The genuine inbound STOP changed as ``case`` says, and its query string."""
    form = inbound_form("+12015550123", "STOP", SID)
    pairs = list(form.items())
    if case in ("MessageSi", "1AccountSid"):
        real = {"MessageSi": "MessageSid", "1AccountSid": "AccountSid"}[case]
        return [(case if k == real else k, v) for k, v in pairs], ""
    if case.startswith("no "):
        drop = {case[3:], "SmsSid", "SmsMessageSid"} if case == "no MessageSid" else {case[3:]}
        return [(k, v) for k, v in pairs if k not in drop], ""
    if case == "twice":
        return [*pairs, ("To", form["To"])], ""
    changes = {
        "MM sid too long": {"MessageSid": "MM" + "a" * 33},
        "other account": {"AccountSid": "AC" + "0" * 32},
        "SmsSid differs": {"SmsSid": message_sid(2)},
        "query": {},
    }[case]
    return list({**form, **changes}.items()), "x=1" if case == "query" else ""


@pytest.mark.parametrize("case", list(INBOUND_REFUSALS))
def test_a_signed_inbound_form_twilio_never_sends_is_refused_with_400(case: str) -> None:
    """A correctly signed inbound form with a renamed, missing, repeated or misshapen parameter, another account or a query gets 400 naming why."""
    pairs, query = inbound_variant(case)
    assert check(INBOUND, pairs, query) == Refusal(400, *INBOUND_REFUSALS[case])


@pytest.mark.parametrize("query", ["reminder=031", "reminder=+31", "reminder=31&x=1", "", "x=31"])
def test_a_status_callback_query_must_be_exactly_reminder_and_an_id(query: str) -> None:
    """A signed callback whose query is not ``reminder=<id>`` in the form this service writes is refused."""
    pairs = list(status_form(SID, "delivered", to="+12015550123").items())
    assert check(STATUS, pairs, query) == Refusal(400, "unexpected query string")


def test_without_a_configured_account_any_account_sid_of_the_right_shape_passes() -> None:
    """With no TWILIO_ACCOUNT_SID given to the app, AccountSid is checked for its shape only."""
    form = {**inbound_form("+12015550123", "STOP", SID), "AccountSid": "AC" + "0" * 32}
    assert check(INBOUND, list(form.items()), account_sid=None) == form
    form["AccountSid"] = "AC" + "0" * 31
    refused = check(INBOUND, list(form.items()), account_sid=None)
    assert refused == Refusal(400, "malformed parameter", "AccountSid")


# -- the callback rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recorded", "attempted", "sid", "expected"),
    [
        (SID, frozenset(), SID, CallbackDecision(True, ReminderStatus.DELIVERED)),
        (None, frozenset({SID}), SID, CallbackDecision(True, ReminderStatus.DELIVERED)),
        (None, frozenset(), SID, CallbackDecision(False)),  # never sent, or still in flight
        (message_sid(2), frozenset(), SID, CallbackDecision(False)),  # another message
        (message_sid(2), frozenset({SID}), SID, CallbackDecision(False)),  # an older one
    ],
)
def test_a_callback_applies_only_to_the_message_recorded_for_its_reminder(
    recorded: str | None, attempted: frozenset[str], sid: str, expected: CallbackDecision
) -> None:
    """A ``delivered`` callback moves a sent reminder only when its SID is the reminder's recorded one (or, none recorded, an attempt's)."""
    assert lifecycle.status_callback("sent", recorded, attempted, sid, "delivered") == expected


# -- unsubscribe tokens -----------------------------------------------------------------------


def mac(secret: str, payload: str) -> str:
    """The MAC a token of ``payload`` carries (as :mod:`reminders.tokens` computes it)."""
    digest = hmac.new(secret.encode(), f"unsubscribe:{payload}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:16]).rstrip(b"=").decode()


@pytest.mark.parametrize("payload", ["0v", "+v", "v_v", " v", "V", "1_0", "-v"])
def test_a_token_verifies_only_in_the_form_sign_writes(payload: str) -> None:
    """A token whose MAC is genuine for a non-canonical spelling of an id (leading zero, sign, underscore, space, upper case) does not verify."""
    assert tokens.verify("k", f"{payload}.{mac('k', payload)}") is None
    assert tokens.verify("k", tokens.sign("k", 31)) == 31
    assert tokens.sign("k", 31) == f"v.{mac('k', 'v')}"
