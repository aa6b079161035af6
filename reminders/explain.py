"""What an error code on a reminder means to a coordinator, in plain words, and what to do.

``reminders status`` prints these beside every reminder that needs a coordinator; they
say what ``docs/coordinators.md`` ("Reading failures") says. The codes are the ones the
channels record (:mod:`reminders.channels.twilio`, :mod:`reminders.channels.smtp`) and
the service's own (``sms-too-long``, ...). A code without words of its own falls back to
its class (an SMTP 4xx, a Twilio 5xx), then to the error text as stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from reminders.lifecycle import SMS_TOO_LONG, UNRECONCILED, Attention

_OUTAGE: Final = "Many at once is an outage: tell operations."
_TWILIO_DOWN: Final = "Twilio failed on its side (an outage, or an error of its own). " + _OUTAGE
_UNREACHABLE: Final = "Twilio could not be reached: the text did not go out. " + _OUTAGE
_UNRECONCILED: Final = (
    "An earlier try may have reached the patient, but the provider could not be asked before "
    "the deadline. Ask the patient whether it arrived."
)
_NEW_MOBILE: Final = (
    "Ask for a mobile number, or set `channels: [email]`; call the patient about the missed "
    "message."
)

#: ``(channel, code)`` -> what happened, and what to do when a person must act.
MEANINGS: Final[Mapping[tuple[str, str], str]] = {
    ("sms", "21211"): "The phone number is not valid (typo, missing digits, wrong country): "
    "check it with the patient or the chart and correct `phone`.",
    ("sms", "21214"): "The phone number cannot be reached: check it with the patient.",
    ("sms", "21408"): "Twilio may not text this number's country: tell operations.",
    ("sms", "21606"): "The clinic's sending number cannot send texts: tell operations.",
    ("sms", "21610"): "The patient unsubscribed from the clinic's texts (replied STOP): "
    "nothing more is texted. They can text START to resume.",
    ("sms", "21612"): "The clinic's sending number cannot text this number: tell operations.",
    ("sms", "21614"): "The number is a landline and cannot receive texts. " + _NEW_MOBILE,
    ("sms", "30003"): "The phone could not be reached (switched off, out of coverage or no "
    "longer in service): call the patient.",
    ("sms", "30005"): "The number is unknown to its carrier (it may no longer exist): check "
    "it with the patient.",
    ("sms", "30006"): "A landline, or a carrier that cannot take texts. " + _NEW_MOBILE,
    ("sms", "20003"): "Twilio refused the clinic's account credentials: tell operations.",
    ("sms", "20429"): "Twilio asked the service to slow down.",
    ("sms", "20500"): _TWILIO_DOWN,
    ("sms", "20503"): _TWILIO_DOWN,
    ("sms", "connection-refused"): _UNREACHABLE,
    ("sms", "connect-timeout"): _UNREACHABLE,
    ("sms", "read-timeout"): "Twilio did not answer in time after the text was handed over. "
    + _OUTAGE,
    ("sms", "connection"): "The connection to Twilio broke after the text was handed over. "
    + _OUTAGE,
    ("sms", "list"): "Twilio could not be asked whether an earlier try went out. " + _OUTAGE,
    ("sms", SMS_TOO_LONG): "The text is longer than 2 SMS with this patient's name: shorten the "
    "first name in the patients file (or have the template shortened).",
    ("sms", UNRECONCILED): _UNRECONCILED,
    ("email", UNRECONCILED): _UNRECONCILED,
    ("email", "550"): "The mail server refused the address (the mailbox does not exist or is "
    "disabled): check the spelling of `email` with the patient and correct it.",
    ("email", "535"): "The mail server refused the clinic's login: tell operations.",
    ("email", "connection"): "The mail server could not be reached, or the connection broke. "
    + _OUTAGE,
    ("email", "smtp-settings"): "The clinic's mail settings are wrong: tell operations.",
    ("email", "non-ascii-address"): "The mail server does not take accents before the @: ask "
    "the patient for another address, or have operations enable SMTPUTF8.",
    ("email", "unencodable"): "The email could not be encoded (an unusual character in the "
    "address): check the address with the patient.",
}
_EMAIL_TEMPORARY: Final = (
    "A temporary problem at the receiving mail server. If it keeps happening for a patient, "
    "contact them another way."
)
_EMAIL_REFUSED: Final = (
    "The mail server refused the message: check the address with the patient; "
    "if many are refused, tell operations."
)

#: What each attention state means, in a few words.
STATES: Final[Mapping[Attention, str]] = {
    Attention.IN_DOUBT: "in doubt",
    Attention.RETRYING: "retrying",
    Attention.EXPIRED: "expired after failed tries",
    Attention.FAILED: "failed for good",
}


def cause(channel: str, code: str | None, error: str | None) -> str:
    """What went wrong with a reminder on ``channel``, in plain words for a coordinator."""
    if code:
        known = MEANINGS.get((channel, code))
        if known is not None:
            return known
        if code.isdigit():
            number = int(code)
            if channel == "email" and 400 <= number < 500:
                return _EMAIL_TEMPORARY
            if channel == "email" and 500 <= number < 600:
                return _EMAIL_REFUSED
            if channel == "sms" and (500 <= number < 600 or 20500 <= number < 20600):
                return _TWILIO_DOWN
    return f"{error}." if error and not error.endswith(".") else (error or "")


def next_step(state: Attention, expires_at: datetime | None = None) -> str:
    """What happens to a reminder in ``state`` now, and what a coordinator may need to do."""
    if state is Attention.IN_DOUBT:
        return (
            "It may have gone out: the service asks the provider before sending it again, "
            "so it is never sent twice."
        )
    if state is Attention.RETRYING:
        until = f"{expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "its deadline"
        return f"The service tries again by itself until {until}."
    if state is Attention.EXPIRED:
        return (
            "Its deadline passed before it could be delivered: it will not be sent. "
            "Call the patient if its content mattered."
        )
    return "It will not be sent."


def meaning(
    state: Attention,
    channel: str,
    code: str | None,
    error: str | None,
    expires_at: datetime | None = None,
) -> str:
    """What happened to a reminder that needs a coordinator, and what comes next, in plain words."""
    return f"{cause(channel, code, error)} {next_step(state, expires_at)}".strip()
