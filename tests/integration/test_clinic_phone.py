"""The clinic's number as each patient reads and dials it.

A patient whose phone is in the clinic's country reads the national format; a patient
abroad reads the international one; every ``tel:`` link dials E.164. The patient's
country is their phone number's region, else the clinic's. Rendered through the
package with the shipped templates, in both languages.
"""

from __future__ import annotations

import re
from datetime import date

import pytest

from reminders.compose import ClinicPhone, Composer, country_of
from reminders.models import Recipient, Schedules
from reminders.templates import Templates

#: A fictional Australian mobile number (the range Australia keeps for drama).
ABROAD = "+61491570156"
AT_HOME = "+12015550123"
NATIONAL, INTERNATIONAL, E164 = "(201) 555-0100", "+1 201-555-0100", "+12015550100"


def email(
    shipped: Schedules, templates: Templates, language: str, phone: str | None
) -> tuple[str, str]:
    """The plain text and HTML of the brace-removal email for a patient with ``phone``."""
    recipient = Recipient("P-1", "Dana", "Reyes", language, "UTC", date(2026, 1, 5), phone)
    rendered = Composer(shipped, templates).render(
        "email",
        recipient,
        template="brace-removal",
        milestone="brace-removal",
        occurrence=1,
        day=date(2026, 2, 16),
    )
    return rendered.text, rendered.html


def test_the_patients_country_is_their_phones_region_else_the_clinics() -> None:
    """+61... is in AU, +1201555... in US; no phone means the clinic's country."""
    assert country_of(ABROAD, "US") == "AU"
    assert country_of(AT_HOME, "GB") == "US"
    assert country_of(None, "US") == "US"


def test_the_number_is_national_at_home_and_international_abroad(shipped: Schedules) -> None:
    """The clinic's number reads (201) 555-0100 in the US and +1 201-555-0100 elsewhere."""
    phone = ClinicPhone.of(shipped.clinic)
    home = Recipient("P-1", "Dana", "Reyes", "en", "UTC", date(2026, 1, 5), AT_HOME)
    away = Recipient("P-2", "Dana", "Reyes", "en", "UTC", date(2026, 1, 5), ABROAD)
    no_phone = Recipient("P-3", "Dana", "Reyes", "en", "UTC", date(2026, 1, 5))
    assert (phone.shown_to(home), phone.shown_to(away), phone.shown_to(no_phone)) == (
        NATIONAL,
        INTERNATIONAL,
        NATIONAL,
    )


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize(
    ("phone", "shown"), [(AT_HOME, NATIONAL), (ABROAD, INTERNATIONAL), (None, NATIONAL)]
)
def test_every_tel_link_dials_e164_and_the_text_shows_the_patients_format(
    shipped: Schedules, templates: Templates, language: str, phone: str | None, shown: str
) -> None:
    """Every tel: link of the HTML email is tel:+12015550100; the email shows the number as the patient dials it.

    Catches: a link without the country code (tel:2015550100), and a US-format number
    shown to a patient abroad.
    """
    text, html = email(shipped, templates, language, phone)
    assert set(re.findall(r'href="tel:([^"]*)"', html)) == {E164}
    assert shown in text
    assert shown in html
    other = INTERNATIONAL if shown == NATIONAL else NATIONAL
    assert other not in text + html
