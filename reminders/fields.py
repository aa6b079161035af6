"""Field-level normalisation shared by every parser: phones, emails, attribute values."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email


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
    """Normalised email address; raises ValueError with the validator's reason."""
    try:
        return validate_email(str(value).strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None


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
