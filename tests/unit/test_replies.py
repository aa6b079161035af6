"""Reading inbound SMS replies: keywords, check-in answers in English and Spanish, re-prompts, free text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reminders.replies import (
    NO,
    STOP_KEYWORDS,
    YES,
    Question,
    QuestionKind,
    Reading,
    ReplyKind,
    Unreadable,
    read_reply,
    reprompt_text,
)

CI = settings(max_examples=300, deadline=None, database=None)

SCALE = Question(QuestionKind.SCALE)
YES_NO = Question(QuestionKind.YES_NO)
CHOICE = Question(QuestionKind.CHOICE, options=3)
QUESTIONS = (None, SCALE, YES_NO, CHOICE)

STOP = Reading(ReplyKind.STOP)
STOP_IN_SENTENCE = Reading(ReplyKind.STOP, in_sentence=True)
START = Reading(ReplyKind.START)
HELP = Reading(ReplyKind.HELP)
FREE = Reading(ReplyKind.FREE_TEXT)


def answer(value: int) -> Reading:
    """The reading of a readable answer."""
    return Reading(ReplyKind.ANSWER, value=value)


def unreadable(question: Question, why: Unreadable) -> Reading:
    """The reading of an unreadable reply to ``question``: its re-prompt key and the reason."""
    return Reading(ReplyKind.UNREADABLE, why=why, reprompt=question.reprompt)


EMPTY, NO_ANSWER, OUT, CONFLICT = (
    Unreadable.EMPTY,
    Unreadable.NO_ANSWER,
    Unreadable.OUT_OF_RANGE,
    Unreadable.CONFLICTING,
)

#: (body, open question, patient language, expected reading): replies as patients type them.
REPLIES = [
    # --- scale 0-10, English ---
    ("7", SCALE, "en", answer(7)),
    ("7/10", SCALE, "en", answer(7)),
    ("7 / 10", SCALE, "en", answer(7)),
    ("pain is 7", SCALE, "en", answer(7)),
    ("7 out of 10", SCALE, "en", answer(7)),
    ("seven", SCALE, "en", answer(7)),
    ("Seven.", SCALE, "en", answer(7)),
    ("8!!", SCALE, "en", answer(8)),
    ("It's like a 6 today", SCALE, "en", answer(6)),
    ("10/10", SCALE, "en", answer(10)),
    ("0", SCALE, "en", answer(0)),
    ("zero", SCALE, "en", answer(0)),
    ("(8)", SCALE, "en", answer(8)),
    ("😩 8 😩", SCALE, "en", answer(8)),
    ("７", SCALE, "en", answer(7)),  # full-width digit
    ("ＳＴＯＰ", SCALE, "en", STOP),  # full-width letters (an East Asian keyboard)
    ("１０", SCALE, "en", answer(10)),
    ("٧", SCALE, "en", answer(7)),  # Arabic-Indic seven
    ("7️⃣", SCALE, "en", answer(7)),  # keycap emoji
    ("🔟", SCALE, "en", answer(10)),
    ("none", SCALE, "en", answer(0)),
    ("No pain!", SCALE, "en", answer(0)),
    ("6-7", SCALE, "en", answer(7)),  # a range reads its higher end
    ("6 - 7", SCALE, "en", answer(7)),
    ("6 to 7", SCALE, "en", answer(7)),
    ("7 or 8", SCALE, "en", answer(8)),
    ("7 or 8 out of 10", SCALE, "en", answer(8)),
    ("between 6 and 7", SCALE, "en", answer(7)),
    ("7.5", SCALE, "en", answer(8)),
    ("from 8 to 3", SCALE, "en", answer(8)),  # the documented over-read
    ("pain 4, call me at 555-0100", SCALE, "en", answer(4)),
    ("5:30 pm and it's a 4", SCALE, "en", answer(4)),
    ("since 10am about 3", SCALE, "en", answer(3)),
    ("on 3/4 it was 7", SCALE, "en", answer(7)),
    ("I felt it once, about 5", SCALE, "en", answer(5)),  # "once" is English here
    ("I can't stop the pain, 9", SCALE, "en", answer(9)),
    ("O", SCALE, "en", unreadable(SCALE, NO_ANSWER)),  # the letter: no low score guessed
    ("several", SCALE, "en", unreadable(SCALE, NO_ANSWER)),
    ("once", SCALE, "en", unreadable(SCALE, NO_ANSWER)),
    ("no pain meds left, it's bad", SCALE, "en", unreadable(SCALE, NO_ANSWER)),
    ("call me at 555-0100", SCALE, "en", unreadable(SCALE, NO_ANSWER)),
    ("07/10", SCALE, "en", unreadable(SCALE, NO_ANSWER)),  # a date
    ("I can't stop the pain", SCALE, "en", unreadable(SCALE, NO_ANSWER)),
    ("help me my calf hurts", SCALE, "en", unreadable(SCALE, NO_ANSWER)),
    ("11", SCALE, "en", unreadable(SCALE, OUT)),
    ("eleven", SCALE, "en", unreadable(SCALE, OUT)),
    ("100", SCALE, "en", unreadable(SCALE, OUT)),
    ("6-11", SCALE, "en", unreadable(SCALE, OUT)),
    ("7, 8", SCALE, "en", unreadable(SCALE, CONFLICT)),
    ("9 last night, 7 now", SCALE, "en", unreadable(SCALE, CONFLICT)),
    ("a 7, the left one", SCALE, "en", answer(7)),  # "one" as a pronoun is no score
    ("seven today", SCALE, "en", answer(7)),
    ("pain 3 at 10 am", SCALE, "en", answer(3)),
    ("the left one hurts", SCALE, "en", unreadable(SCALE, NO_ANSWER)),
    ("took 2 pills and it still hurts", SCALE, "en", unreadable(SCALE, NO_ANSWER)),
    ("two of my toes are numb", SCALE, "en", unreadable(SCALE, NO_ANSWER)),
    ("", SCALE, "en", unreadable(SCALE, EMPTY)),
    ("   \n", SCALE, "en", unreadable(SCALE, EMPTY)),
    ("😭😭😭", SCALE, "en", unreadable(SCALE, EMPTY)),
    (
        "Liked “How is your pain 0 to 10? Reply STOP to stop texts”",
        SCALE,
        "en",
        unreadable(SCALE, EMPTY),
    ),
    ("STOP", SCALE, "en", STOP),
    ("stop.", SCALE, "en", STOP),
    ("Stop please!!", SCALE, "en", STOP),
    ("STOP STOP STOP", SCALE, "en", STOP),
    ("UNSUBSCRIBE", SCALE, "en", STOP),
    ("opt-out", SCALE, "en", STOP),
    ("please stop texting me", SCALE, "en", STOP_IN_SENTENCE),
    ("stop texting me, the pain is 9", SCALE, "en", STOP_IN_SENTENCE),
    ("Stop. Pain is 8", SCALE, "en", STOP_IN_SENTENCE),
    ("don't text me anymore", SCALE, "en", STOP_IN_SENTENCE),
    ("HELP", SCALE, "en", HELP),
    # --- scale 0-10, Spanish ---
    ("siete", SCALE, "es", answer(7)),
    ("Ocho!!", SCALE, "es", answer(8)),
    ("diez", SCALE, "es", answer(10)),
    ("cero", SCALE, "es", answer(0)),
    ("dolor de 7", SCALE, "es", answer(7)),
    ("un dolor de 10", SCALE, "es", answer(10)),
    ("7 de 10", SCALE, "es", answer(7)),
    ("tengo un 6 hoy", SCALE, "es", answer(6)),
    ("un siete hoy", SCALE, "es", answer(7)),
    ("siete de diez", SCALE, "es", answer(7)),
    ("uno", SCALE, "es", answer(1)),
    ("tomé 2 pastillas", SCALE, "es", unreadable(SCALE, NO_ANSWER)),
    ("entre 6 y 7", SCALE, "es", answer(7)),
    ("6 o 7", SCALE, "es", answer(7)),
    ("7,5", SCALE, "es", answer(8)),
    ("sin dolor", SCALE, "es", answer(0)),
    ("nada", SCALE, "es", answer(0)),
    ("once", SCALE, "es", unreadable(SCALE, OUT)),  # eleven in Spanish
    ("alto", SCALE, "es", unreadable(SCALE, NO_ANSWER)),  # "high", not an opt-out
    ("no puedo parar el dolor", SCALE, "es", unreadable(SCALE, NO_ANSWER)),
    ("ayuda, me duele mucho", SCALE, "es", unreadable(SCALE, NO_ANSWER)),
    ("PARAR", SCALE, "es", STOP),
    ("Baja", SCALE, "es", STOP),
    ("dejen de enviarme mensajes", SCALE, "es", STOP_IN_SENTENCE),
    ("no me manden más mensajes por favor", SCALE, "es", STOP_IN_SENTENCE),
    ("AYUDA", SCALE, "es", HELP),
    # --- yes-no ---
    ("yes", YES_NO, "en", answer(YES)),
    ("YES!", YES_NO, "en", answer(YES)),
    ("y", YES_NO, "en", answer(YES)),
    ("yeah", YES_NO, "en", answer(YES)),
    ("yep 👍", YES_NO, "en", answer(YES)),
    ("YESSS", YES_NO, "en", answer(YES)),
    ("no", YES_NO, "en", answer(NO)),
    ("n", YES_NO, "en", answer(NO)),
    ("nope", YES_NO, "en", answer(NO)),
    ("nah", YES_NO, "en", answer(NO)),
    ("No, not today", YES_NO, "en", answer(NO)),
    ("not really", YES_NO, "en", answer(NO)),
    ("yes and no", YES_NO, "en", unreadable(YES_NO, CONFLICT)),
    ("ok", YES_NO, "en", unreadable(YES_NO, NO_ANSWER)),
    ("maybe", YES_NO, "en", unreadable(YES_NO, NO_ANSWER)),
    ("🤷", YES_NO, "en", unreadable(YES_NO, EMPTY)),
    ("START", YES_NO, "en", START),
    ("sí", YES_NO, "es", answer(YES)),
    ("si", YES_NO, "es", answer(YES)),
    ("SI", YES_NO, "es", answer(YES)),
    ("Sí.", YES_NO, "es", answer(YES)),
    ("siii", YES_NO, "es", answer(YES)),
    ("claro", YES_NO, "es", answer(YES)),
    ("por supuesto", YES_NO, "es", answer(YES)),
    ("no la uso", YES_NO, "es", answer(NO)),
    ("para nada", YES_NO, "es", answer(NO)),
    ("sí, no me duele", YES_NO, "es", unreadable(YES_NO, CONFLICT)),
    ("me duele y está hinchado", YES_NO, "es", unreadable(YES_NO, NO_ANSWER)),  # "y" = and
    ("PARAR", YES_NO, "es", STOP),
    # --- choice of 3 ---
    ("2", CHOICE, "en", answer(2)),
    ("#2", CHOICE, "en", answer(2)),
    ("option 3", CHOICE, "en", answer(3)),
    ("two", CHOICE, "en", answer(2)),
    ("dos", CHOICE, "es", answer(2)),
    ("4", CHOICE, "en", unreadable(CHOICE, OUT)),
    ("0", CHOICE, "en", unreadable(CHOICE, OUT)),
    ("1 or 2", CHOICE, "en", unreadable(CHOICE, CONFLICT)),
    ("the blue one", CHOICE, "en", unreadable(CHOICE, NO_ANSWER)),
    ("one", CHOICE, "en", answer(1)),
    # --- no question open ---
    ("7", None, "en", FREE),
    ("my calf is swollen and it hurts", None, "en", FREE),
    ("", None, "en", FREE),
    ("Cancel my appointment on 3/4", None, "en", FREE),
    ("cancel", None, "en", STOP),
    ("yes", None, "en", START),
    ("Start", None, "en", START),
    ("info", None, "en", HELP),
    ("tengo fiebre", None, "es", FREE),
    ("Loved “Your brace check is tomorrow. Reply STOP to opt out”", None, "en", FREE),
]


@pytest.mark.parametrize(
    ("body", "question", "language", "expected"),
    [pytest.param(*row, id=f"{row[0]!r}-{row[1] and row[1].kind}-{row[2]}") for row in REPLIES],
)
def test_real_world_replies_read_as_the_table_says(
    body: str, question: Question | None, language: str, expected: Reading
) -> None:
    """Each reply reads as the table says: numbers, words, noise, emoji, ranges, STOP in a sentence."""
    assert read_reply(body, question, language) == expected


def test_the_table_covers_both_languages_and_every_question() -> None:
    """The table holds at least 60 replies, Spanish and English ones, under every question kind."""
    assert len(REPLIES) >= 60
    assert {language for _, _, language, _ in REPLIES} == {"en", "es"}
    assert {question for _, question, _, _ in REPLIES} == set(QUESTIONS)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("STOP", "stop"),
        ("stop.", "stop"),
        ("Unsubscribe!", "stop"),
        ("START", "start"),
        ("yes", "start"),
        ("HELP", "help"),
        ("info", "help"),
        ("hello, is this the clinic?", "other"),
    ],
)
def test_without_a_question_the_kinds_are_the_values_inbound_rows_store(
    body: str, kind: str
) -> None:
    """With no question open the kind is ``stop``, ``start``, ``help`` or ``other``, as classify_reply gives today."""
    assert read_reply(body, None, "en").kind == kind


def test_a_question_needs_options_exactly_when_it_is_a_choice() -> None:
    """A choice without options, or a scale with options, is refused when the question is built."""
    with pytest.raises(ValueError, match="needs options"):
        Question(QuestionKind.CHOICE)
    with pytest.raises(ValueError, match="takes no options"):
        Question(QuestionKind.SCALE, options=3)


@pytest.mark.parametrize(
    ("question", "language", "text"),
    [
        (SCALE, "en", "Reply with a number from 0 to 10."),
        (SCALE, "es", "Responda con un número del 0 al 10."),
        (SCALE, "es-MX", "Responda con un número del 0 al 10."),
        (YES_NO, "en", "Reply YES or NO."),
        (YES_NO, "es", "Responda SÍ o NO."),
        (Question(QuestionKind.CHOICE, options=4), "en", "Reply with a number from 1 to 4."),
        (CHOICE, "es", "Responda con un número del 1 al 3."),
        (SCALE, "fr", "Reply with a number from 0 to 10."),
    ],
)
def test_reprompt_text_is_in_the_patients_language(
    question: Question, language: str, text: str
) -> None:
    """The default re-prompt is in the patient's language (English for any other), naming the range."""
    assert reprompt_text(question, language) == text


def test_a_number_of_thousands_of_digits_is_out_of_range_not_an_error() -> None:
    """A 5000-digit number (past int()'s limit on digit strings) reads out of range, without raising."""
    assert read_reply("9" * 5000, SCALE, "en") == unreadable(SCALE, OUT)


# --- properties --------------------------------------------------------------------------

#: Pieces of real replies, so that generated texts reach every branch of the reader.
PIECES = (
    "7",
    "10",
    "0",
    "11",
    "555-0100",
    "7/10",
    "6-7",
    "7.5",
    "3/4",
    "5:30",
    "10am",
    "b4",
    "seven",
    "siete",
    "ocho",
    "once",
    "ten",
    "diez",
    "eleven",
    "O",
    "out of",
    "de",
    "or",
    "o",
    "to",
    "between",
    "and",
    "entre",
    "y",
    "n",
    "yes",
    "sí",
    "no",
    "nope",
    "claro",
    "stop",
    "STOP",
    "please",
    "texting",
    "me",
    "mensajes",
    "dejen",
    "de",
    "enviar",
    "help",
    "AYUDA",
    "start",
    "pain",
    "dolor",
    "no pain",
    "nada",
    "Liked “",
    "”",
    "!!",
    "😭",
    "7️⃣",
    "🔟",
    "７",
    "  ",
    ",",
    ".",
    "?",
    "\n",
)
TEXTS = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(PIECES), max_size=8).map(" ".join),
    st.lists(st.sampled_from(PIECES), max_size=8).map("".join),
)
ANY_QUESTION = st.one_of(
    st.sampled_from(QUESTIONS),
    st.integers(1, 9).map(lambda n: Question(QuestionKind.CHOICE, options=n)),
)
LANGUAGES = st.sampled_from(("en", "es", "es-MX", "fr", ""))


@CI
@given(body=TEXTS, question=ANY_QUESTION, language=LANGUAGES)
def test_the_reader_never_raises_is_deterministic_and_well_formed(
    body: str, question: Question | None, language: str
) -> None:
    """Any text reads without raising, twice the same, to a reading whose fields fit its kind."""
    reading = read_reply(body, question, language)
    assert read_reply(body, question, language) == reading
    if question is None:
        assert reading.kind in (
            ReplyKind.STOP,
            ReplyKind.START,
            ReplyKind.HELP,
            ReplyKind.FREE_TEXT,
        )
    if reading.kind is ReplyKind.ANSWER:
        assert question is not None
        assert reading.value is not None
        low, high = {
            QuestionKind.SCALE: (0, 10),
            QuestionKind.YES_NO: (NO, YES),
            QuestionKind.CHOICE: (1, question.options),
        }[question.kind]
        assert low <= reading.value <= high
    else:
        assert reading.value is None
    if reading.kind is ReplyKind.UNREADABLE:
        assert question is not None
        assert reading.why is not None
        assert reading.reprompt == question.reprompt
    else:
        assert (reading.why, reading.reprompt) == (None, None)
    assert not reading.in_sentence or reading.kind is ReplyKind.STOP


#: Noise that cannot spell a number word, a keyword or a unit ("am", "st", "mg"): no vowels,
#: no digits, none of the consonants of the units; with letters of other scripts.
CONSONANT_WORDS = st.text(alphabet="cgjlnpqrvwzжщ痛", min_size=1, max_size=6)
BREAKS = st.sampled_from((" ", ", ", "! ", "? ", " (", ") ", "\n", " 😭 ", " 👍 ", "¡", "¿", "..."))
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@CI
@given(
    before=st.lists(CONSONANT_WORDS, max_size=4),
    after=st.lists(CONSONANT_WORDS, max_size=4),
    left=BREAKS,
    right=BREAKS,
    score=st.integers(0, 10),
    form=st.sampled_from(("plain", "full-width", "out of ten")),
    upper=st.booleans(),
)
def test_a_single_number_in_noise_reads_as_that_score(
    *,
    before: list[str],
    after: list[str],
    left: str,
    right: str,
    score: int,
    form: str,
    upper: bool,
) -> None:
    """A text whose only number is one score 0-10, standing as a word and not a count, reads that score."""
    number = {
        "plain": str(score),
        "full-width": str(score).translate(FULL_WIDTH),
        "out of ten": f"{score}/10",
    }[form]
    body = " ".join(before) + left + number + right + " ".join(after)
    assert read_reply(body.upper() if upper else body, SCALE, "en") == answer(score)


@CI
@given(
    keyword=st.sampled_from(sorted(STOP_KEYWORDS)),
    flips=st.lists(st.booleans(), min_size=12, max_size=12),
    left=st.sampled_from(("", " ", "  \n", "¡", "(", "😡 ", "please ", "por favor ")),
    right=st.sampled_from(("", ".", "!!!", " 🛑", " please", " now", ", gracias", "?")),
    question=ANY_QUESTION,
    language=LANGUAGES,
)
def test_a_stop_keyword_in_any_case_and_noise_is_a_stop_under_any_question(
    *,
    keyword: str,
    flips: list[bool],
    left: str,
    right: str,
    question: Question | None,
    language: str,
) -> None:
    """A STOP keyword alone, in any case, with punctuation, emoji or politeness around it, opts out."""
    cased = "".join(c.upper() if flip else c for c, flip in zip(keyword, flips, strict=False))
    assert read_reply(left + cased + right, question, language) == STOP


@CI
@given(body=TEXTS, question=ANY_QUESTION, language=LANGUAGES)
def test_asking_to_stop_the_texts_wins_over_whatever_follows(
    body: str, question: Question | None, language: str
) -> None:
    """ "Stop texting me." before any text makes it an opt-out read from a sentence, answer or not."""
    assert read_reply(f"Stop texting me. {body}", question, language) == STOP_IN_SENTENCE


@CI
@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=8),
    question=ANY_QUESTION,
    language=LANGUAGES,
)
def test_case_and_surrounding_whitespace_do_not_change_a_reading(
    pieces: list[str], question: Question | None, language: str
) -> None:
    """The same reply in capitals, with spaces and line breaks around it, reads the same."""
    body = " ".join(pieces)
    shouted = f"  {body.upper()}\n"
    assert read_reply(shouted, question, language) == read_reply(body, question, language)
