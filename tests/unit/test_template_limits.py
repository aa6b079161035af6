"""What a template may compute (reminders.sandbox through reminders.templates).

A template is configuration written by the clinic: one that computes too much, or fails
while computing, is a TemplateError naming its file, never a traceback or a hang.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from reminders.compose import Composer
from reminders.errors import TemplateError
from reminders.outbound import NOTICES, RESPONSES
from reminders.sandbox import MAX_INT_BITS, MAX_OUTPUT, MAX_RANGE, MAX_STEPS, MAX_VALUE
from reminders.templates import MAX_TEMPLATE_BYTES, Templates
from reminders.testing import make_schedules

CONTEXT = {"patient": {"first_name": "Dana", "last_name": "Reyes"}}
LAUGHS = "".join(
    f"{{% set l{i} = [{', '.join([f'l{i - 1}'] * 9)}] %}}" for i in range(1, 7)
)  # nine lists of nine lists ... of 'lol': 9^7 items once printed


def _render(tmp_path: Path, source: str) -> str:
    """Render ``source`` as ``templates/en/probe.sms.j2``."""
    folder = tmp_path / "templates" / "en"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "probe.sms.j2").write_text(source, encoding="utf-8")
    return Templates(tmp_path / "templates").render("sms", "en", "probe", CONTEXT).text


LIMITS: list[object] = [
    pytest.param(
        "{{ range(10**9)|list|length }}",
        f"range() of 1,000,000,000 items is over the limit of {MAX_RANGE:,}",
        id="huge-range",
    ),
    pytest.param(
        "{{ ('a' * 10**6)|length }}",
        f"repeating a text or list would build more than {MAX_VALUE:,} characters",
        id="text-repeated",
    ),
    pytest.param(
        "{{ ([0] * 10**6)|length }}",
        f"repeating a text or list would build more than {MAX_VALUE:,} characters",
        id="list-repeated",
    ),
    pytest.param(
        "{% set ns = namespace(s='a') %}{% for i in range(20) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s|length }}",
        f"builds a text of more than {MAX_VALUE:,} characters",
        id="text-doubled-by-tilde",
    ),
    pytest.param(
        "{% set ns = namespace(s=['a']) %}{% for i in range(20) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}{{ ns.s|length }}",
        f"builds a value of more than {MAX_VALUE:,} characters or items",
        id="list-doubled-by-plus",
    ),
    pytest.param(
        "{% set l0 = ['lol'] * 9 %}" + LAUGHS + "{{ l6|string|length }}",
        f"builds a value of more than {MAX_VALUE:,} characters or items",
        id="nested-lists",
    ),
    pytest.param(
        "{% for a in range(300) %}{% for b in range(300) %}{% for c in range(30) %}"
        "{% endfor %}{% endfor %}{% endfor %}",
        f"takes more than {MAX_STEPS:,} steps (loop iterations, calls, filters)",
        id="nested-loops",
    ),
    pytest.param(
        "{% macro twice(n) %}{% if n %}{{ twice(n - 1) }}{{ twice(n - 1) }}{% endif %}"
        "{% endmacro %}{{ twice(16) }}",
        f"takes more than {MAX_STEPS:,} steps (loop iterations, calls, filters)",
        id="macro-calling-itself-twice",
    ),
    pytest.param(
        "{% macro page() %}" + "x" * 1000 + "{% endmacro %}"
        "{% for i in range(2000) %}{{ page() }}{% endfor %}",
        f"writes more than {MAX_OUTPUT:,} characters",
        id="output",
    ),
    pytest.param(
        "{{ (10 ** 1000)|string|length }}",
        f"computes an integer of more than {MAX_INT_BITS} bits",
        id="huge-power",
    ),
    pytest.param(
        "{{ '%1000000s'|format('a') }}",
        "a format width of 1,000,000 is over the limit of 1,000",
        id="format-filter-width",
    ),
    pytest.param(
        "{{ '%*s' % (1000000, 'a') }}",
        "a '%*' width taken from the arguments is not allowed",
        id="percent-star-width",
    ),
    pytest.param(
        "{{ '{:>1000000}'.format('a') }}",
        "a format width of 1,000,000 is over the limit of 1,000",
        id="str-format-width",
    ),
    pytest.param(
        "{{ 'a'|center(1000000) }}",
        "center()'s width or count of 1,000,000 is over the limit of 1,000",
        id="center",
    ),
    pytest.param(
        "{{ range(1000)|join('x' * 1000) }}",
        f"join() would build more than {MAX_VALUE:,} characters or items",
        id="join",
    ),
    pytest.param(
        "{{ ('a' * 1000).replace('a', 'b' * 1000) }}",
        f"replace() would build more than {MAX_VALUE:,} characters or items",
        id="replace-method",
    ),
    pytest.param(
        "{{ 'a'.ljust(1000000) }}",
        "access to attribute 'ljust' of 'str' object is unsafe.",
        id="padding-method",
    ),
    pytest.param(
        "{% set l = [1] %}{% for i in range(20) %}{{ l.extend(l) }}{% endfor %}",
        "access to attribute 'extend' of 'list' object is unsafe.",
        id="list-modified",
    ),
    pytest.param(
        "{{ [[1] * 1000] * 100|sum(start=[]) }}",
        "sum() adds numbers only",
        id="sum-of-lists",
    ),
    pytest.param("{{ 1 / 0 }}", "ZeroDivisionError: division by zero", id="division-by-zero"),
    pytest.param(
        "{% macro again() %}{{ again() }}{% endmacro %}{{ again() }}",
        "RecursionError: maximum recursion depth exceeded",
        id="endless-recursion",
    ),
]


@pytest.mark.parametrize(("source", "reason"), LIMITS)
def test_template_past_a_limit_is_a_template_error_naming_the_file(
    tmp_path: Path, source: str, reason: str
) -> None:
    """A template that computes too much (or fails computing) raises TemplateError with the reason."""
    with pytest.raises(TemplateError) as caught:
        _render(tmp_path, source)

    assert caught.value.file == str(tmp_path / "templates" / "en" / "probe.sms.j2")
    assert caught.value.detail.startswith("does not render: ")
    assert reason in caught.value.detail


def test_lipsum_is_not_available(tmp_path: Path) -> None:
    """``lipsum`` (a generator of any amount of text) is not a template variable."""
    with pytest.raises(TemplateError, match="unknown variable: 'lipsum' is undefined"):
        _render(tmp_path, "{{ lipsum(100000) }}")


def test_recursive_loop_is_refused_at_compile_time(tmp_path: Path) -> None:
    """A ``for ... recursive`` loop is a syntax error naming its line."""
    with pytest.raises(TemplateError) as caught:
        _render(tmp_path, "x\n{% for i in [1] recursive %}{{ loop([1]) }}{% endfor %}")

    assert caught.value.record == "line 2"
    assert caught.value.detail == (
        "syntax error: recursive loops are not allowed in message templates"
    )


def test_template_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    """A template file over 64 KiB is refused as such, before it is compiled."""
    with pytest.raises(TemplateError) as caught:
        _render(tmp_path, "x" * (MAX_TEMPLATE_BYTES + 1))

    assert caught.value.detail == (
        f"the file is larger than the limit of {MAX_TEMPLATE_BYTES:,} bytes"
    )


def test_a_huge_template_file_is_refused_without_being_read(tmp_path: Path) -> None:
    """A 64 MiB template file (sparse: it takes no disk) is refused before it is read: the refusal allocates far less than the file."""
    folder = tmp_path / "templates" / "en"
    folder.mkdir(parents=True)
    with (folder / "probe.sms.j2").open("wb") as huge:
        huge.truncate(64 << 20)
    templates = Templates(tmp_path / "templates")
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match="larger than the limit"):
            templates.render("sms", "en", "probe", CONTEXT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_TEMPLATE_BYTES, f"{peak:,} bytes allocated to refuse it"


def test_ordinary_template_features_still_render(tmp_path: Path) -> None:
    """Loops, filters, formats, ``~``, lists and string methods within the limits work as before."""
    source = (
        "Hi {{ patient.first_name|upper }}: {% for i in range(3) %}{{ i }}{% endfor %} "
        "{{ 'a' ~ 'b' }} {{ [1, 2]|join(',') }} {{ '{:>4}'.format('x') }} {{ '%03d' % 7 }} "
        "{{ patient.last_name.replace('R', 'r') }} {{ (2 ** 10) * 3 }} {{ 'ab' * 2 }}"
    )

    assert _render(tmp_path, source) == "Hi DANA: 012 ab 1,2    x 007 reyes 3072 abab"


def outbound_files() -> list[tuple[str, tuple[str, ...]]]:
    """Every response and notice template name, with the parts it needs."""
    email = ("subject", "txt", "html")
    return [(f"responses/{name}", ("sms",)) for name in RESPONSES] + [
        (
            f"notices/{name}",
            tuple(p for c in channels for p in (email if c == "email" else ("sms",))),
        )
        for name, channels in NOTICES.items()
    ]


def test_validate_reports_a_template_past_a_limit(tmp_path: Path) -> None:
    """The check ``validate`` runs reports a template past a limit as one error for its file."""
    schedules = make_schedules()
    for language in schedules.languages:
        folder = tmp_path / "templates" / language
        folder.mkdir(parents=True)
        for milestone in {m.template for p in schedules.protocols.values() for m in p.milestones}:
            for part in ("sms", "subject", "txt", "html"):
                (folder / f"{milestone}.{part}.j2").write_text("Hi {{ patient.first_name }}")
        for name, parts in outbound_files():
            (folder / name).parent.mkdir(exist_ok=True)
            for part in parts:
                (folder / f"{name}.{part}.j2").write_text("Hi", encoding="utf-8")
    bad = tmp_path / "templates" / "en" / "day-one.sms.j2"
    bad.write_text("{{ range(10**9)|list|length }}", encoding="utf-8")

    errors, _ = Composer(schedules, Templates(tmp_path / "templates")).check()

    assert [str(e) for e in errors] == [
        f"{bad}: does not render: range() of 1,000,000,000 items is over the limit of 10,000"
    ]
