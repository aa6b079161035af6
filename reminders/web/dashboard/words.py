"""What a failure code means to a coordinator, in plain words, and what to do about it.

Providers answer in codes (Twilio ``21211``, SMTP ``550``); the service adds its own
(``sms-too-long``). The worklist shows each failed delivery with one sentence saying
what happened and one saying what to fix, never the code alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Final

from reminders.lifecycle import SMS_TOO_LONG


@dataclass(frozen=True, slots=True)
class Advice:
    """A failure, explained."""

    #: What happened.
    what: str
    #: What a coordinator should do.
    fix: str


_PHONE_FIX: Final = (
    "Check the phone number in the patients file with the patient (a mobile, in E.164 "
    "like +12015550123, or national format); the next sync picks up the correction."
)
#: Advice by error code.
ADVICE: Final = {
    "21211": Advice("The phone number is not a valid number.", _PHONE_FIX),
    "21214": Advice("The phone number cannot be reached.", _PHONE_FIX),
    "21614": Advice(
        "The phone number is not a mobile number (a landline cannot receive texts).",
        "Ask the patient for a mobile number, or remove sms from their channels so they get email.",
    ),
    "30006": Advice(
        "The phone number is a landline or its carrier cannot be reached.",
        "Ask the patient for a mobile number, or remove sms from their channels so they get email.",
    ),
    "30003": Advice(
        "The patient's phone could not be reached (switched off or out of coverage).",
        "Nothing to fix if it happens once; if it repeats, call the patient.",
    ),
    "30005": Advice("The phone number does not exist at the carrier.", _PHONE_FIX),
    "21610": Advice(
        "The patient replied STOP: texts to this number are blocked.",
        "Call the patient if they still need the advice; texting START resumes the messages.",
    ),
    "21408": Advice(
        "The Twilio account may not send to this country.",
        "Ask whoever runs the service to enable the region in Twilio, or use email.",
    ),
    "21606": Advice(
        "The clinic's sending number cannot send texts.",
        "Ask whoever runs the service to check TWILIO_FROM_NUMBER.",
    ),
    "21612": Advice(
        "The phone number cannot receive texts from the clinic's number.",
        "Ask the patient for another mobile number, or use email.",
    ),
    SMS_TOO_LONG: Advice(
        "The text was too long to send (over 2 SMS segments) with this patient's name.",
        "Shorten the first name in the patients file, or the template.",
    ),
    "non-ascii-address": Advice(
        "The mail server does not accept accented letters before the @ of the address.",
        "Ask the patient for another email address.",
    ),
    "unencodable": Advice(
        "The email address could not be used.", "Check the email address in the patients file."
    ),
    "550": Advice(
        "The patient's mail server refused the address (no such mailbox).",
        "Check the email address in the patients file with the patient.",
    ),
    "551": Advice(
        "The patient's mail server refused the address.",
        "Check the email address in the patients file.",
    ),
    "553": Advice(
        "The email address is not valid.", "Check the email address in the patients file."
    ),
}
_NO_ADDRESS: Final = Advice(
    "There is no address for this channel.",
    "Add the phone number or email to the patients file, or remove the channel.",
)
_TEMPLATE: Final = Advice(
    "The message could not be written (a template problem).",
    "Ask whoever maintains the templates to run `reminders validate`.",
)
_OTHER: Final = Advice(
    "The provider refused the message.",
    "If it repeats, ask whoever runs the service to look up the code.",
)


def advice(code: str | None, error: str | None) -> Advice:
    """What a failed delivery's code (or, without one, its error text) means."""
    if code and code in ADVICE:
        return ADVICE[code]
    if code and code.isdigit() and code.startswith("5") and len(code) == 3:
        return ADVICE["550"]
    text = error or ""
    if text.startswith("no ") and "address" in text:
        return _NO_ADDRESS
    if text.startswith("template"):
        return _TEMPLATE
    return _OTHER


#: How the worklist names where an opt-out came from.
OPT_OUT_SOURCES: Final = {
    "sms stop": "replied STOP",
    "unsubscribe link": "used the unsubscribe link",
    "provider 21610": "had replied STOP (Twilio blocks the number)",
}


def opt_out_source(source: str) -> str:
    """How an address came to be opted out, in words."""
    return OPT_OUT_SOURCES.get(source, source or "asked to stop")


def local(moment: datetime | None, zone: tzinfo) -> str:
    """``Tue 2026-12-01 10:00 EST`` in ``zone``, or an empty string."""
    if moment is None:
        return ""
    return moment.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")
