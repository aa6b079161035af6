"""Check-in questions and their alert rules: what schedules.yaml may say, and how answers are judged.

A milestone with a ``question`` is a check-in (SPEC section 11)::

    - id: pain-check
      at: day 4
      question:
        kind: scale            # scale (0-10) | yes-no | choice (options 1..n)
        measure: pain          # answers of one measure are compared and charted together
        window: 24 hours       # how long a reply counts as the answer (default 24 hours)
        alerts:
          urgent: ">= 8"       # a threshold: >=, >, <=, <, = and a number
          review: ">= 6"
          rise: 3              # review: the score rose by 3 or more since the last answer
          missed: 2            # review: 2 check-ins in a row went unanswered

A yes-no threshold is the answer (``review: "no"``); a choice's is the option numbers
(``urgent: [3]``). A protocol may set ``alerts`` for all its check-ins; a question's own
keys win. Pure: judging an answer needs no database or clock.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from reminders.durations import parse_duration
from reminders.errors import ScheduleError
from reminders.lifecycle import AlertLevel
from reminders.replies import NO, SCALE_MAX, YES, Question, QuestionKind

#: How long a reply counts as the answer when a question gives no window.
DEFAULT_WINDOW: Final = timedelta(hours=24)
#: Longest reply window (a check-in must close before the next one of its kind opens).
MAX_WINDOW: Final = timedelta(days=7)
#: Most options of a ``choice`` question (the reply is one digit or number word).
MAX_OPTIONS: Final = 9
#: Longest run of missed check-ins a rule may wait for.
MAX_MISSED: Final = 10

_OPERATORS: Final[Mapping[str, Callable[[int, int], bool]]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "=": operator.eq,
}
_THRESHOLD = re.compile(r"^\s*(>=|<=|>|<|=)?\s*(\d{1,2})\s*$")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_YES_NO: Final = {"yes": YES, "no": NO}


@dataclass(frozen=True, slots=True)
class Threshold:
    """An answer that raises an alert of ``level``: ``value op bound`` (or one of ``values``)."""

    #: Level of the alert it raises.
    level: AlertLevel
    #: How it reads in schedules.yaml (``>= 8``, ``yes``, ``3, 4``): also its words.
    text: str
    #: The comparison (scale) ...
    op: str = ""
    #: ... against this bound.
    bound: int = 0
    #: Or the answers that match (yes-no, choice).
    values: frozenset[int] = frozenset()

    def matches(self, value: int) -> bool:
        """Whether an answer of ``value`` crosses this threshold."""
        if self.op:
            return _OPERATORS[self.op](value, self.bound)
        return value in self.values


@dataclass(frozen=True, slots=True)
class CheckInQuestion:
    """The question of a check-in milestone, its reply window and its alert rules."""

    #: What kind of answer it takes.
    kind: QuestionKind
    #: Options of a ``choice`` (1..options); 0 otherwise.
    options: int
    #: How long after it is sent a reply counts as its answer.
    window: timedelta
    #: Answers of one measure are compared (``rise``) and charted together.
    measure: str
    #: Thresholds, most severe level first.
    thresholds: tuple[Threshold, ...] = ()
    #: A review alert when a scale answer rose by this much since the last one (0: off).
    rise: int = 0
    #: A review alert after this many check-ins in a row went unanswered (0: off).
    missed: int = 0

    @property
    def reading(self) -> Question:
        """What the reply reader needs of it."""
        return Question(self.kind, self.options)

    @property
    def has_alerts(self) -> bool:
        """Whether any rule may raise an alert."""
        return bool(self.thresholds or self.rise or self.missed)


@dataclass(frozen=True, slots=True)
class Firing:
    """One alert the rules raise: its level and why (codes for machines, words for people)."""

    #: The most severe level of the rules that fired.
    level: AlertLevel
    #: Machine-readable reasons, e.g. ``("threshold:>=8", "rise:3")``.
    codes: tuple[str, ...]
    #: The same in words, e.g. ``"answer 9 (urgent at >= 8); up 4 since the last answer"``.
    words: str


def judge_answer(q: CheckInQuestion, value: int, previous: int | None) -> Firing | None:
    """The alert an answer of ``value`` raises (``previous``: the measure's last answer), if any.

    The most severe threshold crossed and a rise are named; the alert takes the most
    severe level among them, so one answer raises at most one alert.
    """
    levels: list[AlertLevel] = []
    codes: list[str] = []
    words: list[str] = []
    shown = _shown(q, value)
    # The most severe threshold crossed names the answer (urgent rules come first).
    crossed = next((t for t in q.thresholds if t.matches(value)), None)
    if crossed is not None:
        levels.append(crossed.level)
        codes.append(f"threshold:{crossed.level}:{crossed.text.replace(' ', '')}")
        words.append(f"answer {shown} ({crossed.level} at {crossed.text})")
    rise = value - previous if previous is not None else 0
    if q.rise and q.kind is QuestionKind.SCALE and rise >= q.rise:
        levels.append(AlertLevel.REVIEW)
        codes.append(f"rise:{q.rise}")
        words.append(f"up {rise} since the last answer ({previous} to {value})")
    if not levels:
        return None
    level = AlertLevel.URGENT if AlertLevel.URGENT in levels else AlertLevel.REVIEW
    return Firing(level, tuple(codes), "; ".join(words))


def judge_missed(q: CheckInQuestion, run: int) -> Firing | None:
    """The alert a run of ``run`` unanswered check-ins in a row raises: once, when it reaches
    the rule's count (a longer run raises nothing more until an answer breaks it)."""
    if not q.missed or run != q.missed:
        return None
    return Firing(
        AlertLevel.REVIEW,
        (f"missed:{q.missed}",),
        f"{run} check-ins in a row unanswered",
    )


def _shown(q: CheckInQuestion, value: int) -> str:
    if q.kind is QuestionKind.YES_NO:
        return "yes" if value == YES else "no"
    if q.kind is QuestionKind.CHOICE:
        return f"option {value}"
    return f"{value}/{SCALE_MAX}"


def answer_text(q: CheckInQuestion | QuestionKind, value: int | None) -> str | None:
    """An answer as stored and shown (``7``, ``yes``, ``2``); None for no answer."""
    kind = q if isinstance(q, QuestionKind) else q.kind
    if value is None:
        return None
    if kind is QuestionKind.YES_NO:
        return "yes" if value == YES else "no"
    return str(value)


# -- schedules.yaml ----------------------------------------------------------------------------


class _Fail:
    def __init__(self, file: str, record: str) -> None:
        self.file, self.record = file, record

    def __call__(self, field: str, message: str) -> ScheduleError:
        return ScheduleError(self.file, message, record=self.record, field=field)


def parse_question(
    raw: object, *, file: str, record: str, milestone: str, defaults: Mapping[str, Any]
) -> CheckInQuestion:
    """Validate a milestone's ``question`` block (``defaults``: the protocol's ``alerts``)."""
    fail = _Fail(file, record)
    if not isinstance(raw, Mapping):
        raise fail("question", "expected a mapping with 'kind', e.g. {kind: scale}")
    unknown = sorted(
        str(k) for k in raw if k not in {"kind", "options", "window", "measure", "alerts"}
    )
    if unknown:
        raise fail(
            f"question.{unknown[0]}",
            "unknown key (allowed: alerts, kind, measure, options, window)",
        )
    try:
        kind = QuestionKind(str(raw.get("kind")))
    except ValueError:
        known = ", ".join(k.value for k in QuestionKind)
        raise fail("question.kind", f"expected one of {known}, got {raw.get('kind')!r}") from None
    options = raw.get("options", 0)
    if kind is QuestionKind.CHOICE:
        if (
            not isinstance(options, int)
            or isinstance(options, bool)
            or not 2 <= options <= MAX_OPTIONS
        ):
            raise fail(
                "question.options", f"a choice needs 2 to {MAX_OPTIONS} options, got {options!r}"
            )
    elif "options" in raw:
        raise fail("question.options", f"only a choice question has options, not {kind}")
    window = DEFAULT_WINDOW
    if "window" in raw:
        try:
            window = parse_duration(raw["window"])
        except ValueError as exc:
            raise fail("question.window", str(exc)) from None
        if not timedelta(minutes=10) <= window <= MAX_WINDOW:
            raise fail("question.window", "must be between 10 minutes and 7 days")
    measure = raw.get("measure", milestone)
    if not isinstance(measure, str) or not _ID.match(measure) or len(measure) > 64:
        raise fail("question.measure", "lowercase letters, digits and dashes, e.g. 'pain'")
    alerts_raw = raw.get("alerts", {})
    if not isinstance(alerts_raw, Mapping):
        raise fail("question.alerts", "expected a mapping, e.g. {urgent: '>= 8', missed: 2}")
    merged = {**defaults, **alerts_raw}
    return _rules(
        fail,
        CheckInQuestion(kind, options if kind is QuestionKind.CHOICE else 0, window, measure),
        merged,
    )


def _rules(fail: _Fail, q: CheckInQuestion, alerts: Mapping[str, Any]) -> CheckInQuestion:
    unknown = sorted(str(k) for k in alerts if k not in {*AlertLevel, "rise", "missed"})
    if unknown:
        raise fail(
            f"question.alerts.{unknown[0]}", "unknown rule (allowed: missed, review, rise, urgent)"
        )
    thresholds = tuple(
        _threshold(fail, q, AlertLevel(level), alerts[level])
        for level in (AlertLevel.URGENT, AlertLevel.REVIEW)
        if level in alerts
    )
    rise = _count(fail, "rise", alerts.get("rise", 0), 1, SCALE_MAX)
    if rise and q.kind is not QuestionKind.SCALE:
        raise fail("question.alerts.rise", f"only a scale answer can rise, not a {q.kind} one")
    missed = _count(fail, "missed", alerts.get("missed", 0), 1, MAX_MISSED)
    return CheckInQuestion(q.kind, q.options, q.window, q.measure, thresholds, rise, missed)


def _count(fail: _Fail, key: str, value: object, low: int, high: int) -> int:
    if value == 0:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise fail(
            f"question.alerts.{key}", f"expected a whole number from {low} to {high}, got {value!r}"
        )
    return value


def _threshold(fail: _Fail, q: CheckInQuestion, level: AlertLevel, value: object) -> Threshold:
    field = f"question.alerts.{level}"
    if q.kind is QuestionKind.YES_NO:
        word = value if isinstance(value, str) else {True: "yes", False: "no"}.get(value)  # type: ignore[call-overload]
        if word not in _YES_NO:
            raise fail(field, f"a yes-no threshold is 'yes' or 'no', got {value!r}")
        return Threshold(level, word, values=frozenset({_YES_NO[word]}))
    if q.kind is QuestionKind.CHOICE:
        items: Sequence[object] = value if isinstance(value, list) else [value]
        if not items or not all(
            isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= q.options for i in items
        ):
            raise fail(field, f"expected option numbers from 1 to {q.options}, got {value!r}")
        numbers = sorted({int(str(i)) for i in items})
        return Threshold(level, ", ".join(map(str, numbers)), values=frozenset(numbers))
    match = (
        _THRESHOLD.match(str(value))
        if isinstance(value, str | int) and not isinstance(value, bool)
        else None
    )
    if match is None or int(match.group(2)) > SCALE_MAX:
        raise fail(
            field, f"expected a comparison with a score 0-{SCALE_MAX}, e.g. '>= 8', got {value!r}"
        )
    op, bound = match.group(1) or ">=", int(match.group(2))
    return Threshold(level, f"{op} {bound}", op=op, bound=bound)
