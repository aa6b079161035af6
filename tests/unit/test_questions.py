"""Check-in questions in schedules.yaml, and how answers and silences are judged (pure)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from reminders.config import parse_schedules
from reminders.errors import ScheduleError
from reminders.questions import CheckInQuestion, judge_answer, judge_missed, parse_question
from reminders.replies import QuestionKind
from reminders.testing import milestone, schedules_doc

PAIN: dict[str, Any] = {
    "kind": "scale",
    "measure": "pain",
    "alerts": {"urgent": ">= 8", "review": ">= 6", "rise": 3, "missed": 2},
}


def question(raw: object, defaults: dict[str, Any] | None = None) -> CheckInQuestion:
    return parse_question(
        raw,
        file="schedules.yaml",
        record="protocols.p.milestones[0] id=m",
        milestone="m",
        defaults=defaults or {},
    )


def with_question(raw: object, **clinic: object) -> dict[str, Any]:
    doc = schedules_doc()
    milestone(doc, 0)["question"] = raw
    doc["clinic"].update({"care_team": ["team@example.com"], "on_call": ["+12015550199"], **clinic})
    return doc


def test_a_scale_question_with_every_rule_is_read() -> None:
    """kind, measure, window default, thresholds most severe first, rise, missed."""
    q = question(PAIN)
    assert (q.kind, q.measure, q.window, q.rise, q.missed) == (
        QuestionKind.SCALE,
        "pain",
        timedelta(hours=24),
        3,
        2,
    )
    assert [(t.level, t.text) for t in q.thresholds] == [("urgent", ">= 8"), ("review", ">= 6")]


@pytest.mark.parametrize(
    ("value", "previous", "expected"),
    [
        (9, None, ("urgent", ("threshold:urgent:>=8",))),
        (8, 7, ("urgent", ("threshold:urgent:>=8",))),
        (7, None, ("review", ("threshold:review:>=6",))),
        (6, 2, ("review", ("threshold:review:>=6", "rise:3"))),
        (9, 2, ("urgent", ("threshold:urgent:>=8", "rise:3"))),
        (5, 2, ("review", ("rise:3",))),
        (4, 2, None),
        (5, None, None),
        (0, 10, None),
    ],
)
def test_an_answer_raises_at_most_one_alert_at_its_most_severe_level(
    value: int, previous: int | None, expected: tuple[str, tuple[str, ...]] | None
) -> None:
    """Thresholds and a rise are judged together: one alert, the worst level, every reason named."""
    firing = judge_answer(question(PAIN), value, previous)
    assert (None if firing is None else (firing.level, firing.codes)) == expected


def test_missed_fires_once_when_the_run_reaches_the_count() -> None:
    """missed: 2 fires at a run of 2, not at 1 or 3 (one alert per run of silence)."""
    q = question(PAIN)
    assert [judge_missed(q, run) is not None for run in (0, 1, 2, 3, 4)] == [
        False,
        False,
        True,
        False,
        False,
    ]


def test_yes_no_and_choice_thresholds() -> None:
    """A yes-no threshold is the answer; a choice's is its option numbers."""
    yes_no = question({"kind": "yes-no", "alerts": {"review": "no", "urgent": "yes"}})
    assert judge_answer(yes_no, 0, None).level == "review"  # type: ignore[union-attr]
    assert judge_answer(yes_no, 1, None).level == "urgent"  # type: ignore[union-attr]
    choice = question({"kind": "choice", "options": 4, "alerts": {"urgent": [4], "review": [2, 3]}})
    assert [
        None if (f := judge_answer(choice, n, None)) is None else f.level for n in (1, 2, 3, 4)
    ] == [
        None,
        "review",
        "review",
        "urgent",
    ]


def test_a_protocols_alerts_apply_to_its_questions_and_a_question_wins() -> None:
    """The protocol's rules are the default of each of its questions; the question's own keys win."""
    q = question({"kind": "scale", "alerts": {"review": ">= 5"}}, {"missed": 3, "review": ">= 7"})
    assert (q.missed, [t.text for t in q.thresholds]) == (3, [">= 5"])


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        ("scale", "question", "expected a mapping"),
        ({"kind": "slider"}, "question.kind", "expected one of scale, yes-no, choice"),
        ({"kind": "scale", "options": 3}, "question.options", "only a choice question"),
        ({"kind": "choice"}, "question.options", "2 to 9 options"),
        ({"kind": "choice", "options": 12}, "question.options", "2 to 9 options"),
        (
            {"kind": "scale", "window": "2 minutes"},
            "question.window",
            "between 10 minutes and 7 days",
        ),
        ({"kind": "scale", "window": "soon"}, "question.window", ""),
        ({"kind": "scale", "measure": "Pain Level"}, "question.measure", "lowercase"),
        ({"kind": "scale", "colour": "red"}, "question.colour", "unknown key"),
        ({"kind": "scale", "alerts": {"urgent": "very"}}, "question.alerts.urgent", "a comparison"),
        (
            {"kind": "scale", "alerts": {"urgent": ">= 11"}},
            "question.alerts.urgent",
            "a comparison",
        ),
        ({"kind": "scale", "alerts": {"panic": ">= 8"}}, "question.alerts.panic", "unknown rule"),
        ({"kind": "scale", "alerts": {"rise": 0.5}}, "question.alerts.rise", "whole number"),
        ({"kind": "scale", "alerts": {"missed": 11}}, "question.alerts.missed", "1 to 10"),
        (
            {"kind": "yes-no", "alerts": {"review": "maybe"}},
            "question.alerts.review",
            "'yes' or 'no'",
        ),
        ({"kind": "yes-no", "alerts": {"rise": 1}}, "question.alerts.rise", "only a scale"),
        (
            {"kind": "choice", "options": 3, "alerts": {"urgent": [4]}},
            "question.alerts.urgent",
            "1 to 3",
        ),
    ],
)
def test_a_bad_question_is_refused_naming_protocol_milestone_and_key(
    raw: object, field: str, says: str
) -> None:
    """Every mistake names the file, the protocol and milestone, and the key."""
    with pytest.raises(ScheduleError) as caught:
        parse_schedules(with_question(raw), "schedules.yaml")
    message = str(caught.value)
    assert "schedules.yaml" in message
    assert "protocols." in message
    assert "id=" in message
    assert field in message
    assert says in message


def test_alert_rules_need_someone_to_tell() -> None:
    """Rules without clinic.care_team, or an urgent rule without clinic.on_call, are refused."""
    with pytest.raises(ScheduleError, match="care_team: is required"):
        parse_schedules(with_question(PAIN, care_team=[]), "schedules.yaml")
    with pytest.raises(ScheduleError, match="on_call: is required"):
        parse_schedules(with_question(PAIN, on_call=[]), "schedules.yaml")
    review_only = {"kind": "scale", "alerts": {"review": ">= 6"}}
    assert parse_schedules(with_question(review_only, on_call=[]), "schedules.yaml")


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("care_team", ["not-an-address"], "care_team[0]"),
        ("on_call", ["12"], "on_call[0]"),
        ("on_call", ["+1201555"] * 21, "the limit is 20"),
        ("emergency_number", "call 911", "a short number"),
    ],
)
def test_bad_clinic_contacts_are_refused_by_name(field: str, value: object, says: str) -> None:
    """A care-team address, on-call number or emergency number that is no such thing is named."""
    with pytest.raises(ScheduleError, match=re.escape(says)):
        parse_schedules(with_question(PAIN, **{field: value}), "schedules.yaml")
