"""The shipped templates, rendered for real: every language, every channel, SMS within 2 segments."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from reminders.compose import Composer, message_context
from reminders.errors import TemplateError
from reminders.models import Recipient, Schedules
from reminders.sms import count_segments
from reminders.templates import Templates


def context(
    schedules: Schedules, first_name: str = "Christopher", **extra: object
) -> dict[str, object]:
    recipient = Recipient("P-1", first_name, "Reyes", "en", "UTC", date(2026, 1, 5))
    ctx = message_context(
        schedules.clinic,
        recipient,
        milestone="brace-removal",
        occurrence=1,
        day=date(2026, 2, 16),
    )
    ctx.update(extra)
    return ctx


def every_message(schedules: Schedules) -> list[tuple[str, str, str]]:
    return sorted(
        {
            (language, m.template, channel)
            for p in schedules.protocols.values()
            for m in p.milestones
            for language in schedules.languages
            for channel in m.channels
        }
    )


def test_shipped_templates_pass_the_check(shipped: Schedules, templates: Templates) -> None:
    """The template check finds no error in the shipped set and counts every SMS template."""
    errors, checks = Composer(shipped, templates).check()
    assert errors == []
    sms_templates = {(lang, t) for lang, t, ch in every_message(shipped) if ch == "sms"}
    assert {(c.language, c.template) for c in checks} == sms_templates


def test_every_template_renders_in_every_language_and_channel(
    shipped: Schedules, templates: Templates
) -> None:
    """Each message names the patient and the clinic's phone; email has a subject, text and HTML."""
    for language, template, channel in every_message(shipped):
        rendered = templates.render(channel, language, template, context(shipped))
        assert "Christopher" in rendered.text, (language, template, channel)
        assert shipped.clinic.phone_display in rendered.text, (language, template, channel)
        if channel == "sms":
            assert count_segments(rendered.text).segments <= 2, (language, template)
            assert rendered.text.startswith(shipped.clinic.short_name)
        else:
            assert rendered.subject
            assert "\n" not in rendered.subject
            assert "Christopher" in rendered.html
            assert shipped.clinic.name in rendered.html


def test_html_email_escapes_patient_data(shipped: Schedules, templates: Templates) -> None:
    """A first name with markup is escaped in HTML email and left as text in the plain part."""
    rendered = templates.render(
        "email", "en", "brace-removal", context(shipped, first_name="<b>Ana</b>")
    )
    assert "<b>Ana</b>" not in rendered.html
    assert "&lt;b&gt;Ana&lt;/b&gt;" in rendered.html
    assert "<b>Ana</b>" in rendered.text


def test_unsubscribe_link_appears_only_when_configured(
    shipped: Schedules, templates: Templates
) -> None:
    """The email footer carries the unsubscribe URL when one is given, and renders without it."""
    url = "https://clinic.example.com/unsubscribe/tok"
    with_link = templates.render(
        "email", "en", "brace-removal", context(shipped, unsubscribe_url=url)
    )
    without = templates.render("email", "en", "brace-removal", context(shipped))
    assert url in with_link.html
    assert url in with_link.text
    assert "unsubscribe/" not in without.html


def test_non_gsm_name_is_folded_to_stay_within_two_segments(
    shipped: Schedules, templates: Templates
) -> None:
    """A name like Zoë that would switch an English SMS to UCS-2 is sent without the accent."""
    rendered = templates.render(
        "sms", "en", "exercises-introduced", context(shipped, first_name="Zoëlle")
    )
    assert "Zoelle" in rendered.text
    assert count_segments(rendered.text).segments <= 2


def _write(root: Path, name: str, text: str) -> Templates:
    (root / "en").mkdir(parents=True, exist_ok=True)
    (root / "en" / name).write_text(text)
    return Templates(root)


def test_unknown_variable_is_an_error_naming_the_file(tmp_path: Path, shipped: Schedules) -> None:
    """StrictUndefined: a misspelt variable fails with the template's path, never renders blank."""
    t = _write(tmp_path, "x.sms.j2", "Hi {{ patient.frist_name }}")
    with pytest.raises(TemplateError, match=r"x\.sms\.j2.*unknown variable"):
        t.render("sms", "en", "x", context(shipped))


def test_sandbox_blocks_unsafe_attribute_access(tmp_path: Path, shipped: Schedules) -> None:
    """A template cannot reach Python internals."""
    t = _write(tmp_path, "x.sms.j2", "{{ patient.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        t.render("sms", "en", "x", context(shipped))


def test_missing_template_is_reported(tmp_path: Path, shipped: Schedules) -> None:
    """A template file that does not exist is an error naming the expected path."""
    with pytest.raises(TemplateError, match=r"en/missing\.sms\.j2: template file is missing"):
        Templates(tmp_path).render("sms", "en", "missing", context(shipped))


def test_too_long_sms_fails_the_check(tmp_path: Path, shipped: Schedules) -> None:
    """The template check reports an SMS template that renders past 2 segments."""
    import shutil

    from tests.conftest import REPO

    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "templates" / "en" / "brace-removal.sms.j2").write_text("x" * 400)
    errors, _ = Composer(shipped, Templates(tmp_path / "templates")).check()
    assert len(errors) == 1
    assert "brace-removal.sms.j2" in str(errors[0])
    assert "3 SMS segments" in str(errors[0])


def test_too_long_response_sms_fails_the_check(tmp_path: Path, shipped: Schedules) -> None:
    """A response to a patient's text (here the answer to HELP) is held to the same 2 segments."""
    import shutil

    from tests.conftest import REPO

    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "templates" / "es" / "responses" / "help.sms.j2").write_text("x" * 400)
    errors, _ = Composer(shipped, Templates(tmp_path / "templates")).check()
    assert [str(e) for e in errors if "help.sms.j2" in str(e)] == [
        f"{tmp_path / 'templates' / 'es' / 'responses' / 'help.sms.j2'}: renders to 3 SMS "
        "segments (400 GSM-7 units); the limit is 2"
    ]
