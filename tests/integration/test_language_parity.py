"""Every Spanish message gives the same instructions as its English twin, point by point.

:data:`INSTRUCTIONS` names each instruction the shipped messages give, with the words
that say it in English and in Spanish; :data:`CARRIES` says which instructions each
template must give on each channel (an email may say more than its SMS, but the same in
both languages). Every message is rendered through the package in both languages and
checked against the same row of the table, so a Spanish message that leaves out an
instruction its English twin gives (or the other way round) fails here, naming it.

The keywords are copied by hand from the messages, not read from the templates: a
reworded message must keep each instruction in both languages for the test to pass.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from reminders.compose import Composer
from reminders.models import Recipient, Schedules
from reminders.templates import Templates

SURGERY = date(2026, 11, 24)
LANGUAGES = ("en", "es")
#: The clinic's number as the sample patient (no phone: the clinic's country) reads it.
PHONE = "(201) 555-0100"
POST_SURGERY = "proximal-hamstring-repair"


@dataclass(frozen=True)
class Instruction:
    """One instruction, as the words that must all appear in a message that gives it."""

    #: English words (lower case).
    en: tuple[str, ...]
    #: Spanish words (lower case).
    es: tuple[str, ...]


INSTRUCTIONS: dict[str, Instruction] = {
    # After surgery (seed page, "Post-procedural Care").
    "crutches": Instruction(("crutches",), ("muletas",)),
    "toe-touch only": Instruction(("toes",), ("apoy", "solo los dedos del pie")),
    "wear the brace": Instruction(("brace",), ("aparato ortopédico",)),
    "brace for 6 weeks": Instruction(("6 weeks",), ("6 semanas",)),
    "brace until the team says": Instruction(("until your care team",), ("hasta que su equipo",)),
    "do not bend the hip": Instruction(("bend your hip",), ("doble la cadera",)),
    "do not straighten the knee": Instruction(("straighten your knee",), ("enderece la rodilla",)),
    "no strain on the hamstring": Instruction(
        ("strain", "back of your thigh"), ("fuerce", "parte trasera del muslo")
    ),
    "more weight, gradually": Instruction(
        ("more weight", "slowly"), ("aumentar", "peso", "poco a poco")
    ),
    "more motion": Instruction(("move",), ("movimiento",)),
    "at the team's pace": Instruction(("care team",), ("su equipo",)),
    "exercises": Instruction(("exercises",), ("ejercicios",)),
    "hamstring exercises": Instruction(("hamstring",), ("isquiotibiales",)),
    "core exercises": Instruction(("core", "back"), ("abdomen", "espalda")),
    "hip-stabilising exercises": Instruction(("hip steady",), ("estabilidad a la cadera",)),
    "only the exercises given": Instruction(("only",), ("solo",)),
    "sport at about 6 months": Instruction(("sports", "6 months"), ("deporte", "6 meses")),
    "safely": Instruction(("safe",), ("segur",)),
    "wait for the team's ok": Instruction(("wait",), ("espere",)),
    "review in about 2 weeks": Instruction(("2 weeks",), ("2 semanas",)),
    "book the review": Instruction(("book",), ("cita",)),
    "follow the team's own instructions": Instruction(
        ("different instructions",), ("otras indicaciones",)
    ),
    "limits change when the team says": Instruction(
        ("when these limits change",), ("cambian estos límites",)
    ),
    "call if no visit is planned": Instruction(("visit", "call us"), ("cita", "llámenos")),
    "call if unsure": Instruction(("not sure", "call us"), ("no está seguro", "llámenos")),
    # Without surgery (seed page, "Treatments").
    "compression": Instruction(("compression",), ("compr", "zona lesionada")),
    "limit weight bearing": Instruction(("weight", "leg"), ("peso", "pierna")),
    "as the team said": Instruction(("care team",), ("su equipo",)),
    "keep to the team's plan": Instruction(("plan",), ("plan",)),
    "call if it gets worse": Instruction(("worse", "call"), ("empeora", "llame")),
    "which symptoms": Instruction(
        ("pain", "swelling", "weakness"), ("dolor", "hinch", "debilidad")
    ),
    "walking gets harder": Instruction(("walking",), ("caminar",)),
    "do not wait": Instruction(("do not wait",), ("no espere",)),
    "delay weakens the muscle": Instruction(
        ("delayed", "weaker and smaller"), ("retrasa", "debilitarse y perder tamaño")
    ),
    "call for a follow-up visit": Instruction(("follow-up visit",), ("cita de seguimiento",)),
    # Check-in questions (the clinic sets when and what alerts; the words ask only).
    "pain from 0 to 10": Instruction(
        ("pain", "0 (none)", "10 (the worst)"), ("dolor", "0 (nada)", "10 (el peor)")
    ),
    "reply with one number": Instruction(
        ("reply with one number",), ("responda con un solo numero",)
    ),
    "reply yes or no": Instruction(("reply yes or no",), ("responda si o no",)),
    # Safety lines the clinic sets (not clinical advice).
    "whom to call if something is wrong": Instruction(
        ("something feels wrong", PHONE), ("algo no va bien", PHONE)
    ),
    "emergency": Instruction(("in an emergency",), ("en una emergencia",)),
    "how to opt out (sms)": Instruction(("reply stop",), ("responda stop",)),
    "how to opt out (email)": Instruction(
        ("stop getting these emails",), ("dejar de recibir estos correos",)
    ),
}

#: What every email says in its frame, beside its own content.
EMAIL_FRAME = (
    "whom to call if something is wrong",
    "emergency",
    "how to opt out (email)",
)
CALL = "whom to call if something is wrong"
STOP = "how to opt out (sms)"

#: (template, channel) -> the instructions its message gives, in both languages.
CARRIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("crutches-toe-touch", "sms"): ("crutches", "toe-touch only", "wear the brace", CALL, STOP),
    ("crutches-toe-touch", "email"): (
        "crutches",
        "toe-touch only",
        "wear the brace",
        "brace for 6 weeks",
        "do not bend the hip",
        "do not straighten the knee",
        "no strain on the hamstring",
        "follow the team's own instructions",
        *EMAIL_FRAME,
    ),
    ("protect-hamstring", "sms"): (
        "do not bend the hip",
        "do not straighten the knee",
        "no strain on the hamstring",
        CALL,
        STOP,
    ),
    ("protect-hamstring", "email"): (
        "do not bend the hip",
        "do not straighten the knee",
        "no strain on the hamstring",
        "crutches",
        "toe-touch only",
        "wear the brace",
        "limits change when the team says",
        *EMAIL_FRAME,
    ),
    ("pain-check", "sms"): ("pain from 0 to 10", "reply with one number", CALL, STOP),
    ("pain-check", "email"): ("pain from 0 to 10", *EMAIL_FRAME),
    ("brace-crutch-use", "sms"): (
        "wear the brace",
        "crutches",
        "toe-touch only",
        "reply yes or no",
        CALL,
        STOP,
    ),
    ("brace-crutch-use", "email"): (
        "wear the brace",
        "crutches",
        "toe-touch only",
        "brace for 6 weeks",
        "brace until the team says",
        *EMAIL_FRAME,
    ),
    ("brace-crutch-check", "sms"): (
        "wear the brace",
        "crutches",
        "toe-touch only",
        "do not bend the hip",
        "do not straighten the knee",
        CALL,
        STOP,
    ),
    ("brace-crutch-check", "email"): (
        "wear the brace",
        "brace for 6 weeks",
        "crutches",
        "toe-touch only",
        "do not bend the hip",
        "do not straighten the knee",
        "no strain on the hamstring",
        "brace until the team says",
        *EMAIL_FRAME,
    ),
    ("brace-removal", "sms"): (
        "wear the brace",
        "brace for 6 weeks",
        "brace until the team says",
        CALL,
        STOP,
    ),
    ("brace-removal", "email"): (
        "wear the brace",
        "brace for 6 weeks",
        "brace until the team says",
        "call if no visit is planned",
        "more weight, gradually",
        "more motion",
        "crutches",
        *EMAIL_FRAME,
    ),
    ("increase-weight-motion", "sms"): (
        "more weight, gradually",
        "more motion",
        "at the team's pace",
        CALL,
        STOP,
    ),
    ("increase-weight-motion", "email"): (
        "more weight, gradually",
        "more motion",
        "at the team's pace",
        "crutches",
        *EMAIL_FRAME,
    ),
    ("exercises-introduced", "sms"): (
        "exercises",
        "hamstring exercises",
        "core exercises",
        "hip-stabilising exercises",
        "only the exercises given",
        CALL,
        STOP,
    ),
    ("exercises-introduced", "email"): (
        "exercises",
        "hamstring exercises",
        "core exercises",
        "hip-stabilising exercises",
        "only the exercises given",
        *EMAIL_FRAME,
    ),
    ("exercise-check-in", "sms"): (
        "exercises",
        "sport at about 6 months",
        "safely",
        "wait for the team's ok",
        CALL,
        STOP,
    ),
    ("exercise-check-in", "email"): (
        "exercises",
        "sport at about 6 months",
        "safely",
        "wait for the team's ok",
        "call if unsure",
        *EMAIL_FRAME,
    ),
    ("book-sport-review", "sms"): (
        "review in about 2 weeks",
        "sport at about 6 months",
        "safely",
        "book the review",
        CALL,
        STOP,
    ),
    ("book-sport-review", "email"): (
        "review in about 2 weeks",
        "sport at about 6 months",
        "safely",
        "book the review",
        *EMAIL_FRAME,
    ),
    ("return-to-sport-review", "sms"): (
        "sport at about 6 months",
        "safely",
        "book the review",
        CALL,
        STOP,
    ),
    ("return-to-sport-review", "email"): (
        "sport at about 6 months",
        "safely",
        "wait for the team's ok",
        "book the review",
        *EMAIL_FRAME,
    ),
    ("nonop-start", "sms"): (
        "compression",
        "limit weight bearing",
        "as the team said",
        "call if it gets worse",
        STOP,
    ),
    ("nonop-start", "email"): (
        "compression",
        "limit weight bearing",
        "as the team said",
        "call if it gets worse",
        "which symptoms",
        "walking gets harder",
        "do not wait",
        "delay weakens the muscle",
        "follow the team's own instructions",
        *EMAIL_FRAME,
    ),
    ("nonop-check-in", "sms"): (
        "compression",
        "limit weight bearing",
        "call if it gets worse",
        "which symptoms",
        "do not wait",
        STOP,
    ),
    ("nonop-check-in", "email"): (
        "compression",
        "limit weight bearing",
        "keep to the team's plan",
        "call if it gets worse",
        "which symptoms",
        "walking gets harder",
        "do not wait",
        "delay weakens the muscle",
        *EMAIL_FRAME,
    ),
    ("nonop-follow-up", "sms"): ("keep to the team's plan", "call if it gets worse", STOP),
    ("nonop-follow-up", "email"): (
        "keep to the team's plan",
        "call for a follow-up visit",
        "call if it gets worse",
        "which symptoms",
        "walking gets harder",
        "do not wait",
        "delay weakens the muscle",
        *EMAIL_FRAME,
    ),
}


def render(composer: Composer, template: str, channel: str, language: str, first: bool) -> str:
    """The message in lower case with single spaces: subject, text and HTML (tags kept)."""
    recipient = Recipient("P-1", "Dana", "Reyes", language, "UTC", SURGERY)
    message = composer.render(
        channel,
        recipient,
        template=template,
        milestone=template,
        occurrence=1,
        day=SURGERY + timedelta(days=7),
        first=first,
    )
    text = " ".join((message.subject, message.text, html.unescape(message.html)))
    return " ".join(text.lower().split())


def words_of(composer: Composer, template: str, channel: str, language: str) -> str:
    """The message as the first one a patient receives, with the HTML tags removed."""
    return " ".join(
        re.sub("<[^>]+>", " ", render(composer, template, channel, language, True)).split()
    )


def missing(text: str, instructions: tuple[str, ...], language: str) -> list[str]:
    """The instructions (with their words) that ``text`` does not give."""
    gaps = []
    for name in instructions:
        words = getattr(INSTRUCTIONS[name], language)
        absent = [w for w in words if w.lower() not in text]
        if absent:
            gaps.append(f"{name} ({', '.join(absent)})")
    return gaps


def test_the_table_covers_every_message_of_the_shipped_protocols(shipped: Schedules) -> None:
    """Every (template, channel) the shipped protocols send has a row in the table, and no row is stale.

    Catches: a milestone or channel added to schedules.yaml whose messages nobody compared.
    """
    sent = {
        (m.template, channel)
        for protocol in shipped.protocols.values()
        for m in protocol.milestones
        for channel in m.channels
    }
    assert sent == set(CARRIES)


@pytest.mark.parametrize(
    ("template", "channel"), sorted(CARRIES), ids=[f"{t}/{c}" for t, c in sorted(CARRIES)]
)
def test_each_message_gives_its_instructions_in_english_and_in_spanish(
    shipped: Schedules, templates: Templates, template: str, channel: str
) -> None:
    """The English and the Spanish message of a template each give every instruction of its row.

    Catches: a Spanish message that leaves out an instruction its English twin gives
    ("wear your brace", the hip and knee limits), or the other way round.
    """
    composer = Composer(shipped, templates)
    gaps = {
        language: missing(
            words_of(composer, template, channel, language), CARRIES[template, channel], language
        )
        for language in LANGUAGES
    }
    assert gaps == {"en": [], "es": []}, f"{template} {channel} leaves out: {gaps}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_after_surgery_says_whom_to_call_if_something_is_wrong(
    shipped: Schedules, templates: Templates, language: str
) -> None:
    """Every SMS and email of the post-surgery protocol names the clinic's number for when something feels wrong.

    Catches: a post-surgery message that only says "Questions?" (nothing about a problem).
    """
    composer = Composer(shipped, templates)
    words = getattr(INSTRUCTIONS[CALL], language)
    silent = [
        f"{m.template}/{channel}"
        for m in shipped.protocols[POST_SURGERY].milestones
        for channel in m.channels
        for first in (True, False)
        if not all(w in render(composer, m.template, channel, language, first) for w in words)
    ]
    assert silent == []
