"""What a Twilio webhook must be before anything acts on it: signed, and exactly Twilio's form.

Twilio signs the URL it called followed by every parameter's name and value, sorted by
name and concatenated with no separator. The signature does not fix where a name ends
and its value begins: ``MessageSid=SM1…`` sent as ``MessageSi=dSM1…``, or
``?reminder=3`` with a first parameter named ``1AccountSid`` in place of
``?reminder=31`` with ``AccountSid``, carries the same valid signature. A valid
signature is necessary, not sufficient. :func:`verify` also requires:

- a body of UTF-8 ``name=value`` pairs, each name at most once;
- names Twilio sends to that endpoint only (:data:`INBOUND`, :data:`STATUS`), each
  value in that parameter's shape: message SIDs ``SM``/``MM`` + 32 hex digits, the
  configured ``AccountSid``, E.164 numbers, lower-case status words, digit-only codes;
- the query string this service gave Twilio, exactly: none for inbound texts,
  ``reminder=<id>`` (no sign, no leading zero, nothing else) for status callbacks.

Why that is enough: the signed string is the URL, then name, value, name, value...
Moving characters across a boundary renames a parameter, changes the query string, or
merges whole pairs into the value before them. A renamed parameter is refused unless
its new name is also Twilio's; that takes a neighbour giving or taking a name's first
or last letters (``Sms`` of ``SmsMessageSid``, ``City`` of ``FromCity``), which breaks
the neighbour's strict shape or collides with the genuine parameter of that name. A
query that gives or takes letters no longer has its shape (the id ends in a digit, no
name starts with one). A merge swallows pairs into free text: a required pair is then
missing, the optional ones acted upon (a callback's ``ErrorCode`` and ``To``) follow
strict values only, and the only free text acted upon, ``Body``, is followed by the
required ``From``. So whatever a splice changes, nothing acted upon changes with it
unless the webhook is refused; ``tests/integration/test_webhook_splicing.py`` searches
for a counterexample.

Twilio adds parameters now and then without notice. A webhook with a name not listed
here is refused with 400 and logged as ``webhook.refused`` with that name (never a
value): add the name and its shape here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator

#: Largest reminder id a status callback may name (the databases' 64-bit signed integer).
MAX_ID: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter Twilio sends: the shape of its value, and whether it always comes."""

    #: The whole value must match.
    shape: re.Pattern[str]
    #: Twilio always sends it, and something acts on it or on its neighbours.
    required: bool = False


@dataclass(frozen=True, slots=True)
class Contract:
    """What Twilio sends to one endpoint."""

    #: The path Twilio calls (the signed URL is REMINDERS_PUBLIC_URL + path + query).
    path: str
    #: The whole query string must match (the empty string for none).
    query: re.Pattern[str]
    #: Every parameter name Twilio sends there, with its shape.
    params: Mapping[str, Param]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a webhook is not acted upon."""

    #: 403 for a bad or missing signature, 400 for anything else.
    status: int
    #: In words, for the response and the log (never a value).
    reason: str
    #: The parameter at fault, if one is.
    name: str | None = None


def _p(pattern: str, *, required: bool = False) -> Param:
    return Param(re.compile(pattern), required)


_HEX32 = "[0-9a-f]{32}"
_E164 = r"\+[1-9][0-9]{6,14}"
#: A message SID: SMS and MMS.
MESSAGE_SID: Final = re.compile(f"(?:SM|MM){_HEX32}")
#: Free text Twilio passes on (a place name, its own error text): any character but NUL.
_TEXT = "[^\x00]{0,256}"
#: The place parameters Twilio adds after ``From`` and ``To``.
_PLACE = ("City", "State", "Zip", "Country")
_COMMON: Final = {
    "AccountSid": _p(f"AC{_HEX32}", required=True),
    "ApiVersion": _p("2010-04-01"),
    "MessageSid": _p(MESSAGE_SID.pattern, required=True),
    "SmsSid": _p(MESSAGE_SID.pattern),
    "MessagingServiceSid": _p(f"MG{_HEX32}"),
    "SmsStatus": _p("[a-z_]{1,32}"),
}

#: An inbound text (POST /twilio/inbound).
INBOUND: Final = Contract(
    "/twilio/inbound",
    re.compile(""),
    {
        **_COMMON,
        "ApiVersion": _p("2010-04-01", required=True),
        # The patient's words: anything but NUL, up to Twilio's 1,600 characters.
        "Body": _p("[^\x00]{0,1600}", required=True),
        "From": _p(_E164, required=True),
        # The clinic's number: E.164 or a short code.
        "To": _p(f"{_E164}|[0-9]{{3,8}}"),
        "SmsMessageSid": _p(MESSAGE_SID.pattern),
        "NumMedia": _p("[0-9]{1,2}"),
        "NumSegments": _p("[0-9]{1,2}"),
        "ReferralNumMedia": _p("[0-9]{1,2}"),
        "OptOutType": _p("STOP|START|HELP"),
        # Where Twilio places the two numbers (often empty): never acted upon.
        **{f"{side}{part}": _p(_TEXT) for side in ("From", "To") for part in _PLACE},
        **{f"MediaUrl{n}": _p("https://[!-~]{1,2000}") for n in range(10)},
        **{f"MediaContentType{n}": _p("[!-~]{1,255}") for n in range(10)},
    },
)

#: A status callback for one of our messages (POST /twilio/status?reminder=ID).
STATUS: Final = Contract(
    "/twilio/status",
    re.compile("reminder=[1-9][0-9]{0,18}"),
    {
        **_COMMON,
        "MessageStatus": _p("[a-z_]{1,32}", required=True),
        "ErrorCode": _p("[0-9]{0,6}"),
        "ErrorMessage": _p(_TEXT),
        # The patient's number the message went to.
        "To": _p(_E164),
        # The sender: E.164, a short code or an alphanumeric sender id.
        "From": _p(f"{_E164}|[0-9]{{3,8}}|[A-Za-z0-9 ]{{1,11}}"),
        "RawDlrDoneDate": _p("[0-9]{1,14}"),
        "ChannelToAddress": _p("[+0-9X]{1,20}"),
        "ChannelPrefix": _p("[a-z]{1,16}"),
        "ChannelInstallSid": _p(f"XE{_HEX32}"),
    },
)

#: Parameters that repeat ``MessageSid`` and must equal it.
_ALIASES: Final = ("SmsSid", "SmsMessageSid")


def read_form(raw: bytes) -> list[tuple[str, str]] | None:
    """The ``name=value`` pairs of a form body, or None if it is not a well-formed one."""
    try:
        return parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=100,
        )
    except ValueError:  # UnicodeDecodeError is one
        return None


def verify(
    contract: Contract,
    raw: bytes,
    query: str,
    *,
    public_url: str | None,
    signature: str | None,
    auth_token: str | None,
    account_sid: str | None,
) -> dict[str, str] | Refusal:
    """The webhook's parameters if Twilio sent exactly this to ``contract``'s path, else why not.

    ``query`` is the raw query string of the request; ``account_sid`` None accepts any
    ``AccountSid`` of the right shape.
    """
    pairs = read_form(raw)
    if pairs is None:
        return Refusal(400, "not a form")
    params = dict(pairs)
    url = f"{public_url}{contract.path}" + (f"?{query}" if query else "")
    if not (auth_token and public_url and signature) or not RequestValidator(auth_token).validate(
        url, params, signature
    ):
        return Refusal(403, "invalid or missing X-Twilio-Signature")
    if len(params) != len(pairs):
        return Refusal(400, "parameter given twice", _first_repeat(pairs))
    if not contract.query.fullmatch(query):
        return Refusal(400, "unexpected query string")
    for name, value in params.items():
        param = contract.params.get(name)
        if param is None:
            return Refusal(400, "unknown parameter", name)
        if not param.shape.fullmatch(value):
            return Refusal(400, "malformed parameter", name)
    for name, param in contract.params.items():
        if param.required and name not in params:
            return Refusal(400, "missing parameter", name)
    if account_sid is not None and params["AccountSid"] != account_sid:
        return Refusal(400, "another account", "AccountSid")
    for alias in _ALIASES:
        if params.get(alias, params["MessageSid"]) != params["MessageSid"]:
            return Refusal(400, "malformed parameter", alias)
    return params


def _first_repeat(pairs: list[tuple[str, str]]) -> str:
    """The first name that occurs a second time in ``pairs``."""
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            return name
        seen.add(name)
    raise ValueError("no name repeats")
