"""The ``fhir:`` block of schedules.yaml: validated like the rest, errors naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from reminders.errors import ScheduleError
from reminders.models import TIMEZONE_EXTENSION
from reminders.testing import OTHER_PROTOCOL, PROTOCOL, make_schedules, schedules_doc

SYSTEM = "https://clinic.example.com/fhir/CodeSystem/procedures"


def with_fhir(block: Any) -> dict[str, Any]:
    """The test kit's schedules document with ``block`` as its ``fhir:``."""
    doc = schedules_doc()
    doc["fhir"] = block
    return doc


def test_the_fhir_block_maps_codes_to_protocols() -> None:
    """Each (system, code) names its protocol; the time zone extension has its default."""
    schedules = make_schedules(
        with_fhir(
            {
                "patient_identifier": "urn:oid:2.16.840.1.113883.3.555",
                "procedures": [
                    {"system": SYSTEM, "code": "A1", "protocol": PROTOCOL},
                    {"system": SYSTEM, "code": 27385, "protocol": OTHER_PROTOCOL},
                ],
            }
        )
    )
    fhir = schedules.fhir
    assert fhir.procedures == {(SYSTEM, "A1"): PROTOCOL, (SYSTEM, "27385"): OTHER_PROTOCOL}
    assert fhir.patient_identifier == "urn:oid:2.16.840.1.113883.3.555"
    assert fhir.timezone_extension == TIMEZONE_EXTENSION
    assert fhir.attribute_extension is None
    assert fhir.codes_of(OTHER_PROTOCOL) == [(SYSTEM, "27385")]


def test_without_a_fhir_block_the_table_is_empty() -> None:
    """A schedules.yaml without ``fhir:`` still loads, with no procedure codes."""
    assert make_schedules().fhir.procedures == {}


@pytest.mark.parametrize(
    ("block", "where", "words"),
    [
        ("yes", "fhir", "expected a mapping"),
        ({"procedure": []}, "fhir: procedure", "unknown key"),
        ({"procedures": {"a": 1}}, "fhir: procedures", "expected a list"),
        (
            {"procedures": [{"system": SYSTEM, "code": "A1", "protocol": "knee"}]},
            "fhir.procedures[0]: protocol",
            "no protocol named 'knee'",
        ),
        (
            {"procedures": [{"system": SYSTEM, "protocol": PROTOCOL}]},
            "fhir.procedures[0]: code",
            "is required",
        ),
        (
            {"procedures": [{"system": SYSTEM, "code": "A1", "protocol": PROTOCOL, "x": 1}]},
            "fhir.procedures[0]: x",
            "unknown key",
        ),
        (
            {
                "procedures": [
                    {"system": SYSTEM, "code": "A1", "protocol": PROTOCOL},
                    {"system": SYSTEM, "code": "A1", "protocol": OTHER_PROTOCOL},
                ]
            },
            "fhir.procedures[1]: code",
            "listed twice",
        ),
        ({"patient_identifier": "urn:a b"}, "fhir: patient_identifier", "not a URI"),
        ({"timezone_extension": ["x"]}, "fhir: timezone_extension", "expected text"),
    ],
)
def test_a_wrong_fhir_block_names_the_key(block: Any, where: str, words: str) -> None:
    """Every mistake in ``fhir:`` is one ScheduleError naming the record and key."""
    with pytest.raises(ScheduleError) as caught:
        make_schedules(with_fhir(block))
    assert f"schedules.yaml: {where}: " in str(caught.value)
    assert words in str(caught.value)
