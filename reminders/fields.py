"""Field-level normalisation shared by every parser: lengths, phones, emails, attribute values.

Every text a person writes into a configuration or patients file is bounded here before
anything else reads it: a runaway cell (a pasted letter, a wrong column, a hostile
file) is reported against its record and never reaches the database, a template or a
provider. The limits are documented in the README's patients-file section and in the
comments of ``schedules.yaml``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Final

import phonenumbers
from email_validator import EmailNotValidError, validate_email

#: Longest text (in characters) of each field, by its name in the patients file or in
#: schedules.yaml (the same name has the same limit in both): ids, names and contact
#: details reach every message, page and log line.
LIMITS: Final[Mapping[str, int]] = {
    "id": 64,  # patient ids; protocol and milestone ids and template names too
    "first_name": 100,
    "last_name": 100,
    "phone": 32,
    "email": 254,  # RFC 5321's longest forward path
    "surgery_date": 32,
    "protocol": 64,
    "timezone": 64,
    "language": 16,
    "channels": 32,
    "status": 16,
    "title": 200,
    "name": 100,
    "short_name": 100,
    "coordinator_email": 254,
    "country": 8,
}
#: Longest text of anything else in a configuration file.
MAX_TEXT: Final = 1000
#: Most attributes one patient may carry.
MAX_ATTRIBUTES: Final = 20
#: Longest attribute name.
MAX_ATTRIBUTE_KEY: Final = 64
#: Longest attribute value.
MAX_ATTRIBUTE_VALUE: Final = 200
#: How much of a rejected value an error message repeats.
ECHO: Final = 40
#: Unicode's control characters (category Cc): exactly C0, DEL and C1. One search of a
#: compiled class; a ``unicodedata.category`` call per character was a tenth of validating
#: a patients file.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")


def too_long(text: str, limit: int) -> str | None:
    """Why ``text`` is refused when it has more than ``limit`` characters, else None."""
    if len(text) > limit:
        return f"is {len(text):,} characters long; the limit is {limit:,}"
    return None


def text_problem(text: str, limit: int) -> str | None:
    """Why ``text`` is refused: longer than ``limit`` characters, or holding a control character.

    A line break or an escape sequence in a name or an id would reach email headers, log
    lines and terminals.
    """
    reason = too_long(text, limit)
    if reason is not None:
        return reason
    found = _CONTROL.search(text)
    if found is not None:
        return f"has a control character ({found.group()!r}) at position {found.start() + 1}"
    return None


def check_length(text: str, limit: int) -> str:
    """``text`` if :func:`text_problem` finds nothing wrong with it; raises ValueError if it does."""
    reason = text_problem(text, limit)
    if reason is not None:
        raise ValueError(reason)
    return text


def shorten(text: str, limit: int = ECHO) -> str:
    """``text`` cut to ``limit`` characters for an error message, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def normalise_phone(value: object, region: str) -> str:
    """E.164 form of a phone number given in E.164 or in ``region``'s national format.

    Raises ValueError when the text is not a valid number.
    """
    text = str(value).strip()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValueError(
            f"{text!r} is not a phone number (use E.164 like +12015550123 or a {region} number)"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{text!r} is not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(value: object) -> str:
    """Normalised email address; raises ValueError with the validator's reason.

    The validator's verdict on an address whose local part is a plain ASCII dot-atom is
    its verdict on the domain, so that verdict is kept per domain: a clinic's 100,000
    patients have a few hundred domains, and the domain check (IDNA and its Unicode
    tables) was a third of a large sync's validation. Anything else (quotes, Unicode,
    a display name, an invalid domain) goes to the validator as a whole, which also
    gives the reason for a refusal.
    """
    text = str(value).strip()
    local, _, domain = text.rpartition("@")
    if _PLAIN_LOCAL.fullmatch(local):
        normal = _email_domain(domain)
        if normal is not None:
            address = f"{local}@{normal}"
            if len(address) <= LIMITS["email"] and address.isascii():
                return address
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None


#: A local part the validator takes as it is: a dot-atom of ASCII letters, digits and
#: RFC 5322 atext symbols (email_validator leaves its 64-character limit to strict mode).
_PLAIN_LOCAL: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
)


@functools.lru_cache(maxsize=4096)  # bounded: a hostile file may name a domain per record
def _email_domain(domain: str) -> str | None:
    """The validator's normal form of ``domain`` after a plain local part, or None."""
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def attribute_text(value: object) -> str:
    """The text form of an attribute value, so YAML ``true`` and CSV ``true`` compare equal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def mask_phone(phone: str | None) -> str:
    """A phone number safe for logs: ``+1201*****23``.

    Shows the first five and last two characters (first two and last two when the text
    has eight characters or fewer); text too short to hide anything in between is
    masked entirely.
    """
    if not phone:
        return ""
    keep = 5 if len(phone) > 8 else 2
    if len(phone) <= keep + 2:  # too short to show both ends and still hide anything
        return "*" * len(phone)
    return phone[:keep] + "*" * (len(phone) - keep - 2) + phone[-2:]


def mask_email(email: str | None) -> str:
    """An address safe for logs: ``d***@example.com``."""
    if not email or "@" not in email:
        return ""
    local, _, domain = email.rpartition("@")  # a quoted local part may hold "@" itself
    return f"{local[:1]}***@{domain}"
