"""The shipped protocol against the clinic's patient-education page, fact by fact.

The facts below are copied by hand from the seed page (``seed/proximal-hamstring-rupture.txt``,
section "Post-procedural Care of Proximal Hamstring Rupture"); they are NOT read from
``schedules.yaml``, so a protocol that moves a milestone to the wrong week, or a message
that drops an instruction, fails here. Each fact is checked through the package: the
protocol as :func:`reminders.config.load_schedules` reads it, and every message as
:class:`reminders.templates.Templates` renders it, in English and Spanish, by SMS and email.

The page gives timing for three things only: crutches and toe-touch weight bearing right
after surgery, a brace for 6 weeks, and a return to sport in about 6 months. For the rest
it says only "then" (after the brace), so those facts must appear after the brace comes off
and before the 6-month review, whatever week the clinic picks.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from reminders.compose import Composer
from reminders.models import Milestone, Protocol, Recipient, Schedules
from reminders.templates import Templates

PROTOCOL = "proximal-hamstring-repair"
SURGERY = date(2026, 11, 24)
#: Day 0 is the surgery; "6 weeks" and "6 months" as days after it.
BRACE_OFF_DAY = 6 * 7
SIX_MONTHS_DAY = 26 * 7
#: "About 6 months": 26 weeks, give or take 2.
SIX_MONTHS_SLACK = 2 * 7


@dataclass(frozen=True)
class Fact:
    """One instruction of the seed page and where in the protocol it must be said."""

    #: The sentence of the seed page, for the failure message.
    seed: str
    #: Words that must all appear in one English message (lower case, any line breaks).
    en: tuple[str, ...]
    #: The same instruction in the Spanish message.
    es: tuple[str, ...]
    #: Day windows (inclusive): in each, some milestone's message must carry the fact.
    windows: tuple[tuple[int, int], ...]


FACTS = (
    Fact(
        "Following surgery, you will be on crutches with limited (toe touch) weight bearing.",
        en=("crutches", "toes"),
        es=("muletas", "dedos del pie"),
        windows=((1, 1),),  # right after surgery: the first day's message
    ),
    Fact(
        "You will have to avoid movements such as bending your hip, extending your knee "
        "and other activities that strain the hamstrings.",
        en=("bend your hip", "straighten your knee", "strain"),
        es=("doble la cadera", "enderece la rodilla", "evite", "parte trasera del muslo"),
        windows=((1, 7),),  # from surgery on: within the first week
    ),
    Fact(
        "Braces are worn for 6 weeks to help you limit range of motion.",
        en=("brace",),
        es=("aparato ortopédico",),
        windows=((1, 7), (BRACE_OFF_DAY, BRACE_OFF_DAY)),  # worn from surgery; off at 6 weeks
    ),
    Fact(
        "Braces are worn for 6 weeks ...",
        en=("brace", "6 weeks"),
        es=("aparato ortopédico", "6 semanas"),
        windows=((BRACE_OFF_DAY, BRACE_OFF_DAY),),
    ),
    Fact(
        "You will then gradually increase weight bearing and range of motion.",
        en=("more weight", "move"),
        es=("aumentar", "peso", "movimiento"),
        windows=((BRACE_OFF_DAY, SIX_MONTHS_DAY - SIX_MONTHS_SLACK - 1),),
    ),
    Fact(
        "Hamstring exercises as well as core and hip stabilizing exercises are introduced.",
        en=("exercises", "hamstring", "core", "hip"),
        es=("ejercicios", "abdomen", "cadera"),
        windows=((BRACE_OFF_DAY, SIX_MONTHS_DAY - SIX_MONTHS_SLACK - 1),),
    ),
    Fact(
        "You can safely return to sports in about 6 months.",
        en=("sports", "6 months"),
        es=("deporte", "6 meses"),
        windows=((SIX_MONTHS_DAY - SIX_MONTHS_SLACK, SIX_MONTHS_DAY + SIX_MONTHS_SLACK),),
    ),
)


@pytest.fixture(scope="module")
def protocol(shipped: Schedules) -> Protocol:
    """The shipped post-surgery protocol, as the package reads it."""
    return shipped.protocols[PROTOCOL]


def day_of(protocol: Protocol, milestone_id: str) -> int:
    milestone = protocol.milestone(milestone_id)
    assert milestone is not None, f"{PROTOCOL} has no milestone {milestone_id!r}"
    return milestone.offset_days


def rendered(
    schedules: Schedules, templates: Templates, milestone: Milestone, language: str, channel: str
) -> list[tuple[int, str]]:
    """(day, lower-cased text with single spaces) of every occurrence of ``milestone``."""
    found = []
    for occurrence, day in enumerate(milestone.offsets(), start=1):
        message = Composer(schedules, templates).render(
            channel,
            Recipient("P-1", "Dana", "Reyes", language, "UTC", SURGERY),
            template=milestone.template,
            milestone=milestone.id,
            occurrence=occurrence,
            day=SURGERY + timedelta(days=day),
        )
        text = " ".join(
            (message.subject, message.text, html.unescape(re.sub("<[^>]+>", " ", message.html)))
        )
        found.append((day, " ".join(text.lower().split())))
    return found


def test_brace_removal_is_at_six_weeks(protocol: Protocol) -> None:
    """The brace-removal milestone is due on day 42 (the page: braces are worn for 6 weeks).

    Catches: the brace-removal message moved to another week (e.g. week 5: the brace off too early).
    """
    assert day_of(protocol, "brace-removal") == BRACE_OFF_DAY


def test_return_to_sport_review_is_at_about_six_months(protocol: Protocol) -> None:
    """The return-to-sport review is due 26 weeks (+-2) after surgery (the page: about 6 months).

    Catches: the sport review planned months early or late.
    """
    day = day_of(protocol, "return-to-sport-review")
    assert abs(day - SIX_MONTHS_DAY) <= SIX_MONTHS_SLACK


def test_crutch_and_toe_touch_advice_is_the_first_message_on_day_one(protocol: Protocol) -> None:
    """The first milestone is due on day 1 and is the crutches / toe-touch advice.

    Catches: the crutch precautions sent days after surgery, or something else sent first.
    """
    first = min(protocol.milestones, key=lambda m: m.offset_days)
    assert (first.id, first.offset_days) == ("crutches-toe-touch", 1)
    assert first.expires_after <= timedelta(days=1)  # never "day-1 crutch precautions" later on


@pytest.mark.parametrize(
    ("language", "channel"), [("en", "sms"), ("en", "email"), ("es", "sms"), ("es", "email")]
)
@pytest.mark.parametrize("fact", FACTS, ids=lambda f: f.en[0] + "+" + f.en[-1])
def test_each_instruction_of_the_page_is_said_at_the_right_time(
    shipped: Schedules, templates: Templates, fact: Fact, language: str, channel: str
) -> None:
    """Each instruction of the page appears, by keyword, in a message every patient gets in its time window.

    Catches: a milestone moved out of its window (a wrong week), or a message (in either
    language, on either channel) that no longer says what the page says.
    """
    protocol = shipped.protocols[PROTOCOL]
    words = fact.en if language == "en" else fact.es
    said_on = sorted(
        day
        for milestone in protocol.milestones
        if channel in milestone.channels and not milestone.when  # said to every patient
        for day, text in rendered(shipped, templates, milestone, language, channel)
        if all(word in text for word in words)
    )
    for first, last in fact.windows:
        assert any(first <= day <= last for day in said_on), (
            f"{fact.seed!r} ({language} {channel}: {', '.join(words)}) must be said between "
            f"day {first} and day {last}; it is said on days {said_on}"
        )
