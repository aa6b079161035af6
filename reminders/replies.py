"""Reading one inbound SMS: an opt-out, opt-in or help keyword, an answer to the open check-in, or free text.

Pure: no database, clock or network. ``read_reply(body, question, language)`` returns one
:class:`Reading`; it never raises and gives the same reading for the same arguments.

How a reply is read, in this order::

    body ──fold──> reaction to our message ("Liked “…”")?  ── FREE_TEXT / UNREADABLE(EMPTY)
                   STOP-family?  ─────────────────────────── STOP (always wins)
                   the whole message START or HELP?  ──────── START / HELP
                   no question open?  ─────────────────────── FREE_TEXT
                   scale / yes-no / choice  ───────────────── ANSWER(value) / UNREADABLE(why)

*Fold*: Unicode NFKC (full-width digits and letters), any script's digits to ASCII, case
folded, accents dropped (``sí`` = ``si`` = ``SI``), apostrophes removed; emoji and
punctuation only separate words (``"8!!"`` is 8; keycap ``7️⃣`` is 7 and ``🔟`` is 10).

Decisions a caller relies on:

* **STOP** is read (a) when the whole message, less politeness (``please``, ``thanks``,
  ``por favor``...), is one STOP keyword (``STOP``, ``Stop please!!``); (b) when one
  clause is an unmistakable keyword (``"Stop. Pain is 8"``); (c) when a sentence asks
  for the messages to end (``"please stop texting me"``, ``"dejen de enviarme mensajes"``):
  the FCC's 2024 consent rule takes any reasonable wording as a revocation. In (b) and
  (c) ``in_sentence`` is True: carriers act on lone keywords only, so Twilio has not
  blocked the number, and the text may say more ("stop texting me, the pain is 9"):
  forward it too. A STOP word not about messages is no opt-out: ``"I can't stop the
  pain"``, ``"no puedo parar el dolor"``, ``"cancel my appointment"``.
* **START** and **HELP** only as the whole message (not ``"help me, my calf hurts"``:
  a person must read that). ``YES`` (Twilio's opt-in) answers an open yes-no question.
* **Scale** 0-10: digits, ``7/10``, ``7 out of 10``, ``7 de 10``, number words (``seven``,
  ``siete``; ``once`` is 11 for Spanish patients only). A range or a hesitation
  (``6-7``, ``6 to 7``, ``7 or 8``, ``entre 6 y 7``, ``7.5``) reads the HIGHER score:
  under-reading is the harm (a missed alert), and a range is no conflict, so it costs no
  re-prompt; ``"from 8 to 3"`` thus reads 8, an over-read a person can dismiss. Two
  separate scores (``"7 today, 9 last night"``) are unreadable. ``none``, ``no pain``,
  ``nada``, ``sin dolor`` as the whole message read 0 (not ``"no pain meds left"``); the
  letter ``O`` is not 0. Phone numbers, dates, times and counts (``555-0100``, ``3/4``,
  ``5:30``, ``10am``, ``2 pills``, ``two of my toes``, ``the left one``) are no scores.
* **Yes-no**: yes, yeah, yep, sure, sí, claro, por supuesto...; no, nope, nah, para nada,
  not really...; stretched too (``siii``). ``y``/``n`` only alone (``y`` is Spanish
  "and"). Both yes and no (``"sí, no me duele"``) are unreadable; ``ok`` is neither.
* **Choice**: the option's number 1..n, in digits or words; two numbers are unreadable.
* **Unreadable** carries ``why`` (loggable: no patient text) and ``reprompt``, the key of
  the re-prompt template (``reprompt-scale``, ``reprompt-yes-no``, ``reprompt-choice``);
  :func:`reprompt_text` gives its default text in English or Spanish.

Replacing ``reminders.http.classify_reply``: ``read_reply(body, None, language).kind``
is ``stop``, ``start``, ``help`` or ``other``, the values inbound rows already store.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class ReplyKind(StrEnum):
    """What an inbound text is."""

    #: An opt-out: opt the number out and confirm; wins over everything else.
    STOP = "stop"
    #: An opt-in keyword: lift the number's opt-out.
    START = "start"
    #: A help keyword: answer with the clinic's help text in the patient's language.
    HELP = "help"
    #: A readable answer to the open question (:attr:`Reading.value`).
    ANSWER = "answer"
    #: A reply to the open question that cannot be read: re-prompt once.
    UNREADABLE = "unreadable"
    #: No question open: record and forward (the value inbound rows carry today).
    FREE_TEXT = "other"


class QuestionKind(StrEnum):
    """The kinds of check-in question (SPEC section 11)."""

    #: A score from 0 to 10; higher is worse.
    SCALE = "scale"
    #: Yes or no.
    YES_NO = "yes-no"
    #: One of options numbered 1..n.
    CHOICE = "choice"


class Unreadable(StrEnum):
    """Why a reply to an open question could not be read (no patient text: safe to log)."""

    #: Nothing but whitespace, punctuation or emoji, or a reaction to our message.
    EMPTY = "empty"
    #: Words, but no number (scale, choice) or no yes or no word (yes-no).
    NO_ANSWER = "no_answer"
    #: One number, outside the question's range (11, 100, 0 for a choice).
    OUT_OF_RANGE = "out_of_range"
    #: Two different numbers, a range for a choice, or both yes and no.
    CONFLICTING = "conflicting"


#: Highest score of a ``scale`` question (the lowest is 0).
SCALE_MAX: Final = 10
#: :attr:`Reading.value` of a yes-no answer.
YES: Final = 1
NO: Final = 0


@dataclass(frozen=True, slots=True)
class Question:
    """The open check-in question a reply is read against."""

    #: What kind of answer it takes.
    kind: QuestionKind
    #: How many options a ``choice`` has (answers 1..options); 0 for the other kinds.
    options: int = 0

    def __post_init__(self) -> None:
        """Refuses a choice without options, or options on another kind."""
        if self.kind is QuestionKind.CHOICE and self.options < 1:
            raise ValueError("a choice question needs options: 1 or more")
        if self.kind is not QuestionKind.CHOICE and self.options != 0:
            raise ValueError(f"a {self.kind} question takes no options")

    @property
    def reprompt(self) -> str:
        """Key of the re-prompt template for this kind (``reprompt-scale``...)."""
        return f"reprompt-{self.kind}"


@dataclass(frozen=True, slots=True)
class Reading:
    """What one inbound text is; ``value`` only on ANSWER, ``why``/``reprompt`` only on UNREADABLE."""

    #: What the text is.
    kind: ReplyKind
    #: STOP read from a sentence, not a lone keyword: the carrier has not blocked the
    #: number, and the text may say more: forward it too.
    in_sentence: bool = False
    #: Scale: the score 0-10; choice: the option 1..n; yes-no: :data:`YES` or :data:`NO`.
    value: int | None = None
    #: Why an answer could not be read.
    why: Unreadable | None = None
    #: Key of the re-prompt template to send (:attr:`Question.reprompt`).
    reprompt: str | None = None


# -- vocabulary (folded: lower case, no accents, no apostrophes) -----------------------------

# Twilio's default keywords, as single-word messages: opt-out STOP STOPALL UNSUBSCRIBE CANCEL
# END QUIT REVOKE OPTOUT, opt-in START UNSTOP YES, help HELP INFO (help.twilio.com/articles/
# 223134027, "Twilio support for opt-out keywords"). They are English only; Advanced Opt-Out
# of a Messaging Service adds others (help.twilio.com/articles/360034798533): give it the
# Spanish words below so the carrier side agrees. BAJA is the usual Spanish opt-out ("darse
# de baja"); not ALTO: alone it also means "high", an answer to a pain question.
STOP_KEYWORDS: Final = frozenset(
    {"stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "revoke"}
    | {"optout", "opt out", "parar", "para", "cancelar", "baja", "detener"}
)
#: Keywords that opt out even as one clause of a longer text; not ``cancel``/``end``/
#: ``quit``/``para``/``baja``: "Cancel. Can't make it Tuesday" is about an appointment.
CLAUSE_STOP_KEYWORDS: Final = frozenset(
    {"stop", "stopall", "stop all", "unsubscribe", "optout", "opt out", "revoke", "parar"}
)
START_KEYWORDS: Final = frozenset({"start", "unstop", "optin", "opt in", "yes"})
HELP_KEYWORDS: Final = frozenset({"help", "info", "ayuda"})
#: Politeness around a STOP keyword that leaves it a keyword ("Stop please!!").
_POLITE: Final = frozenset(
    {"please", "pls", "plz", "now", "thanks", "thank", "you", "thx", "ty"}
    | {"por", "favor", "porfa", "ya", "gracias"}
)
_MSG: Final = (
    r"(?:texts?|texting|messages?|messaging|msgs?|sms|reminders?|mensajes?|textos?|recordatorios?)"
)
#: Sentences that ask for the messages to end: under the FCC's 2024 consent order (FCC 24-24,
#: Federal Register 2024-04587) any reasonable wording revokes consent, not only keywords.
_STOP_SENTENCES: Final = re.compile(
    "|".join(
        [
            r"\b(?:stop|quit|cease|end|cancel)\s+(?:with\s+)?(?:(?:sending|texting|messaging|contacting)\b"
            rf"|(?:(?:the|these|those|all|your|my|this|any)\s+){{0,2}}{_MSG}\b)",
            r"\b(?:unsubscribe|optout|opt out|revoke)\b",
            r"\b(?:dont|do not|never)\s+(?:text|message|contact|sms)\s+(?:me|us|this number)\b",
            rf"\bno more\s+{_MSG}\b",
            r"\bremove me from\b",
            r"\b(?:dejen|deje|dejar|dejes)\s+de\s+(?:enviar|mandar|escribir|textear)",
            r"\bno\s+(?:me\s+)?(?:envien|manden|escriban|envie|mande|escriba|envies|mandes)\s+mas\b",
            rf"\bno\s+(?:quiero|deseo)\s+(?:recibir\s+)?(?:mas\s+)?{_MSG}\b",
            r"\b(?:dar|darme|denme|deme|dame)\s+de\s+baja\b",
            rf"\b(?:cancelar|parar|detener)\s+(?:(?:los|estos|mis|sus)\s+)?{_MSG}\b",
            rf"\bno mas\s+{_MSG}\b",
        ]
    )
)
#: An iMessage/Android reaction quotes our message back: none of it is the patient's.
_REACTION: Final = re.compile(
    r"^\W*(?:liked|loved|laughed at|emphasi[sz]ed|disliked|questioned|reacted\b.{0,12}?\bto"
    r"|le gusto|le encanto|se rio de|enfatizo|no le gusto|pregunto por)\s*[\"“”«]"
)

#: Number words 0-10 in English and Spanish (not "un"/"una": "un dolor de 7" is 7); words
#: past the scale all read 11: all that matters about them is that they are out of range.
_EN_0_TO_10: Final = "zero one two three four five six seven eight nine ten"
_ES_0_TO_10: Final = "cero uno dos tres cuatro cinco seis siete ocho nueve diez"
_PAST_SCALE: Final = "eleven once twelve doce fifteen quince twenty veinte hundred cien mil million"
_WORD_NUMBERS: Final = (
    dict(zip(_EN_0_TO_10.split(), range(11), strict=True))
    | dict(zip(_ES_0_TO_10.split(), range(11), strict=True))
    | dict.fromkeys(_PAST_SCALE.split(), 11)
)
#: Number words that are numbers in one language only and common words in the other.
_ONLY_IN: Final = {"once": "es"}
#: Words after digits that make a time, dose, ordinal, count or measure, not a score.
_UNITS: Final = frozenset(
    {"am", "pm", "h", "hr", "hrs", "st", "nd", "rd", "th", "mg", "ml", "kg", "lb", "lbs", "x"}
    | {"k", "cm", "mm", "ft", "d", "wk", "wks", "min", "mins", "minutes", "hour", "hours", "day"}
    | {"days", "week", "weeks", "times", "pill", "pills", "tablet", "tablets", "steps", "miles"}
    | {"minutos", "hora", "horas", "dia", "dias", "semana", "semanas", "veces", "pastillas"}
)
#: Words after a number word that keep it a score: connectors and "now".
_JOINERS: Final = frozenset({"or", "o", "u", "to", "hasta", "out", "sobre"})
_NOW: Final = frozenset({"today", "now", "tonight", "hoy", "ahora"})
#: Words between a score and 10 that make "N out of 10".
_OUT_OF: Final = (("/",), ("out", "of"), ("of",), ("de",), ("sobre",))
#: Words between two scores that make a range or a hesitation.
_RANGE: Final = (("-",), ("~",), ("to",), ("or",), ("o",), ("u",), ("a",), ("hasta",))
_BETWEEN: Final = {"between": "and", "entre": "y"}
_ZERO_PHRASES: Final = frozenset(
    {"none", "nothing", "no pain", "no pain at all", "nada", "ninguno", "ninguna"}
    | {"sin dolor", "nada de dolor", "ningun dolor", "no me duele", "zero pain", "cero dolor"}
)
_YES_WORDS: Final = frozenset(
    {"yes", "yeah", "yea", "yep", "yup", "sure", "correct", "affirmative"}
    | {"si", "sip", "claro", "correcto", "afirmativo"}
)
_NO_WORDS: Final = frozenset({"no", "nope", "nah", "nop", "negative", "nel", "negativo"})
_YES_PHRASES: Final = ("of course", "por supuesto")
_NO_PHRASES: Final = ("not really", "of course not", "para nada", "de ninguna manera")

_REPROMPTS: Final = {
    ("en", QuestionKind.SCALE): "Reply with a number from 0 to 10.",
    ("es", QuestionKind.SCALE): "Responda con un número del 0 al 10.",
    ("en", QuestionKind.YES_NO): "Reply YES or NO.",
    ("es", QuestionKind.YES_NO): "Responda SÍ o NO.",
    ("en", QuestionKind.CHOICE): "Reply with a number from 1 to {options}.",
    ("es", QuestionKind.CHOICE): "Responda con un número del 1 al {options}.",
}


# -- folding ----------------------------------------------------------------------------------

_TRANSLATE: Final = str.maketrans(
    {"–": "-", "—": "-", "―": "-", "−": "-", "‐": "-", "‑": "-", "⁄": "/", "∕": "/"}
    | {"'": "", "’": "", "‘": "", "`": "", "🔟": " 10 "}
)
_ALNUM: Final = re.compile(r"[^\W_]+")
_CLAUSE_BREAK: Final = re.compile(r"[.!?;,:\n¡¿()\[\]]+")
_DOUBLES: Final = re.compile(r"(\w)\1+")
_LEX: Final = re.compile(
    r"(?P<num>\d+(?:[-/.:,]\d+)*)|(?P<word>[^\W\d_]+)|(?P<sep>[-/~])", re.UNICODE
)


def _fold(body: str) -> str:
    """Lower case, ASCII digits, no accents or apostrophes (see the module docstring)."""
    text = unicodedata.normalize("NFKC", body).translate(_TRANSLATE).casefold()
    return "".join(
        str(unicodedata.decimal(c)) if c.isdecimal() else c
        for c in unicodedata.normalize("NFKD", text)
        if unicodedata.category(c) not in ("Mn", "Me")
    )


def _primary(language: str) -> str:
    """The primary subtag of a language tag: ``es-MX`` -> ``es``."""
    return re.split(r"[-_]", language, maxsplit=1)[0].casefold()


#: The yes and no words with doubled letters made single, as replies are: ``siii`` -> ``si``.
_YES_STEMS: Final = frozenset(_DOUBLES.sub(r"\1", w) for w in _YES_WORDS)
_NO_STEMS: Final = frozenset(_DOUBLES.sub(r"\1", w) for w in _NO_WORDS)


# -- keywords ---------------------------------------------------------------------------------


def _dedupe(words: Sequence[str]) -> str:
    """The words without politeness and repeats, joined: ``stop stop please`` -> ``stop``."""
    kept: list[str] = []
    for word in words:
        if word not in _POLITE and (not kept or kept[-1] != word):
            kept.append(word)
    return " ".join(kept)


def _stop(text: str, words: Sequence[str]) -> Reading | None:
    """A STOP reading if the folded text is an opt-out (see the module docstring)."""
    if _dedupe(words) in STOP_KEYWORDS:
        return Reading(ReplyKind.STOP)
    for clause in _CLAUSE_BREAK.split(text):
        clause_words = _ALNUM.findall(clause)
        if _dedupe(clause_words) in CLAUSE_STOP_KEYWORDS or _STOP_SENTENCES.search(
            " ".join(clause_words)
        ):
            return Reading(ReplyKind.STOP, in_sentence=True)
    return None


# -- numbers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Atom:
    """One lexed piece: a number (``lo`` = ``hi``), a range, a word, a separator or a non-score."""

    #: ``num``, ``range``, ``word``, ``sep`` or ``skip`` (a phone, date, time or dose).
    what: str
    text: str = ""
    lo: int = 0
    hi: int = 0


def _int(digits: str) -> int:
    """The value of a digit run; long runs are simply large (int() refuses > 4300 digits)."""
    return int(digits) if len(digits) <= 4 else 10**4


def _number(digits: str) -> _Atom:
    """A run of digits with inner separators: a score, ``7/10``, a range, a decimal or a non-score."""
    parts = re.split(r"[-/.:,]", digits)
    if len(parts) == 1:
        return _Atom("num", lo=_int(digits), hi=_int(digits))
    if len(parts) == 2:
        a, b = parts
        sep = digits[len(a)]
        plain = a == "0" or not a.startswith("0")  # "07/10" is a date
        if sep == "/" and b == "10" and plain:
            return _Atom("num", lo=_int(a), hi=_int(a))
        if sep == "-" and len(a) <= 2 and len(b) <= 2:
            return _Atom("range", lo=min(_int(a), _int(b)), hi=max(_int(a), _int(b)))
        if sep in ".," and len(a) <= 2 and len(b) == 1 and plain:  # 7.5, Spanish 7,5
            return _Atom("range", lo=_int(a), hi=_int(a) + (b != "0"))
    return _Atom("skip")


def _atoms(text: str, language: str) -> list[_Atom]:
    """The text as numbers, words and separators; numbers that count or measure are skipped.

    Digits glued after a letter (``b4``) or before a unit (``10am``, ``2 pills``) are no
    score. A number word is one only where a score stands: before the end, punctuation, a
    number, a connector or "now" (``seven!``, ``seven out of ten``, not ``two pills``);
    ``one``/``uno``, also a pronoun ("the left one"), only alone or before a connector.
    """
    matches = list(_LEX.finditer(text))
    atoms: list[_Atom] = []
    for i, m in enumerate(matches):
        nxt = matches[i + 1] if i + 1 < len(matches) else None
        follower = nxt["word"] if nxt and not text[m.end() : nxt.start()].strip() else None
        if m["num"] is not None:
            glued = (
                i > 0 and matches[i - 1]["word"] is not None and matches[i - 1].end() == m.start()
            )
            atoms.append(_Atom("skip") if glued or follower in _UNITS else _number(m["num"]))
        elif m["word"] is not None:
            word = m["word"]
            value = _WORD_NUMBERS.get(word, -1) if _ONLY_IN.get(word, language) == language else -1
            if word in ("one", "uno"):
                value = value if len(matches) == 1 or follower in _JOINERS else -1
            elif follower is not None and follower not in _JOINERS | _NOW:
                ten = nxt is not None and text[nxt.end() :].lstrip().startswith(
                    ("10", "ten", "diez")
                )
                value = value if follower in ("of", "de") and ten else -1
            atoms.append(_Atom("word", word) if value < 0 else _Atom("num", word, value, value))
        else:
            atoms.append(_Atom("sep", m["sep"]))
    return atoms


def _after(atoms: Sequence[_Atom], i: int, options: Sequence[tuple[str, ...]]) -> int | None:
    """Index past one of ``options`` (word or separator sequences) starting at ``i``, or None."""
    for option in options:
        end = i + len(option)
        if end <= len(atoms) and all(
            a.what in ("word", "sep") and a.text == t
            for a, t in zip(atoms[i:end], option, strict=True)
        ):
            return end
    return None


def _scores(atoms: Sequence[_Atom]) -> list[tuple[int, int]]:
    """Every number or range as ``(lo, hi)``: "N out of 10" is N, "A or B" is ``(A, B)``."""
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(atoms):
        atom = atoms[i]
        i += 1
        if atom.what not in ("num", "range"):
            continue
        lo, hi = atom.lo, atom.hi
        if atom.what == "num":
            k = _after(atoms, i, _RANGE)
            word_before = atoms[i - 2].text if i >= 2 else ""
            if word_before in _BETWEEN:
                k = k or _after(atoms, i, ((_BETWEEN[word_before],),))
            if k is not None and k < len(atoms) and atoms[k].what == "num":
                lo, hi = min(lo, atoms[k].lo), max(hi, atoms[k].hi)
                i = k + 1
        j = _after(atoms, i, _OUT_OF)
        if j is not None and j < len(atoms) and atoms[j].what == "num" and atoms[j].hi == 10:
            i = j + 1
        found.append((lo, hi))
    return found


# -- reading ----------------------------------------------------------------------------------


def _unreadable(question: Question, why: Unreadable) -> Reading:
    """An unreadable reply to ``question``, with its re-prompt key."""
    return Reading(ReplyKind.UNREADABLE, why=why, reprompt=question.reprompt)


def _read_yes_no(question: Question, words: Sequence[str]) -> Reading:
    """Yes or no; both, or neither, is unreadable."""
    if not words:
        return _unreadable(question, Unreadable.EMPTY)
    if len(words) == 1 and words[0] in ("y", "n"):
        return Reading(ReplyKind.ANSWER, value=YES if words[0] == "y" else NO)
    padded, stems = f" {' '.join(words)} ", {_DOUBLES.sub(r"\1", w) for w in words}
    yes = bool(stems & _YES_STEMS) or any(f" {p} " in padded for p in _YES_PHRASES)
    no = bool(stems & _NO_STEMS) or any(f" {p} " in padded for p in _NO_PHRASES)
    if yes and no:
        return _unreadable(question, Unreadable.CONFLICTING)
    if yes or no:
        return Reading(ReplyKind.ANSWER, value=YES if yes else NO)
    return _unreadable(question, Unreadable.NO_ANSWER)


def _read_number(question: Question, text: str, words: Sequence[str], language: str) -> Reading:
    """A score 0-10 (a range reads its higher end) or an option 1..n."""
    scale = question.kind is QuestionKind.SCALE
    found = _scores(_atoms(text, language))
    if not found:
        if scale and " ".join(words) in _ZERO_PHRASES:
            return Reading(ReplyKind.ANSWER, value=0)
        return _unreadable(question, Unreadable.NO_ANSWER if words else Unreadable.EMPTY)
    if len({hi for _, hi in found}) > 1 or (not scale and any(lo != hi for lo, hi in found)):
        return _unreadable(question, Unreadable.CONFLICTING)
    value = found[0][1]
    low, high = (0, SCALE_MAX) if scale else (1, question.options)
    if not low <= value <= high:
        return _unreadable(question, Unreadable.OUT_OF_RANGE)
    return Reading(ReplyKind.ANSWER, value=value)


def read_reply(body: str, question: Question | None, language: str) -> Reading:
    """What an inbound SMS ``body`` is, with ``question`` open (or none) for a patient of ``language``.

    ``language`` is the patient's (``en``, ``es``, ``es-MX``): words of both languages are
    read for everyone; it decides only the words that are numbers in one language alone.
    """
    lang = _primary(language)
    text = _fold(body)
    if _REACTION.match(text):  # it quotes our message: no word of it is the patient's
        text = ""
    words = _ALNUM.findall(text)
    stop = _stop(text, words)
    if stop is not None:
        return stop
    whole = " ".join(words)
    yes_no = question is not None and question.kind is QuestionKind.YES_NO
    if whole in START_KEYWORDS and not (yes_no and whole == "yes"):
        return Reading(ReplyKind.START)
    if whole in HELP_KEYWORDS:
        return Reading(ReplyKind.HELP)
    if question is None:
        return Reading(ReplyKind.FREE_TEXT)
    if question.kind is QuestionKind.YES_NO:
        return _read_yes_no(question, words)
    return _read_number(question, text, words, lang)


def reprompt_text(question: Question, language: str) -> str:
    """The default re-prompt for ``question`` in ``language`` (English when it has none)."""
    template = _REPROMPTS.get(
        (_primary(language), question.kind), _REPROMPTS[("en", question.kind)]
    )
    return template.format(options=question.options)
