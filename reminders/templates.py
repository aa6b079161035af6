"""Rendering messages from ``templates/<language>/<name>.<part>.j2`` in a Jinja sandbox.

Parts: ``sms`` (SMS body), ``subject``, ``txt`` (plain-text email) and ``html`` (HTML
email, autoescaped). Undefined variables are errors, never blanks.

A template is configuration the clinic writes: whatever goes wrong in it (a file over
:data:`MAX_TEMPLATE_BYTES`, a division by zero, a macro calling itself, a bound of
:mod:`reminders.sandbox` exceeded) is a :class:`~reminders.errors.TemplateError` naming
the file, which ``validate`` and the service's reload report; never a traceback or a hang.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2
from jinja2.loaders import split_template_path

from reminders.errors import TemplateError
from reminders.sandbox import BoundedEnvironment, budget
from reminders.sms import MAX_SEGMENTS, count_segments
from reminders.yamlio import DocumentTooLarge, read_bounded

TEMPLATES_DIR: Final = "templates"
#: Largest template file read, in bytes.
MAX_TEMPLATE_BYTES: Final = 64 << 10
#: Template parts per channel.
PARTS: Final[dict[str, tuple[str, ...]]] = {"sms": ("sms",), "email": ("subject", "txt", "html")}


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message ready for a channel."""

    #: SMS body, or the email's plain-text body.
    text: str
    #: Email subject (empty for SMS).
    subject: str = ""
    #: Email HTML body (empty for SMS).
    html: str = ""


def _autoescape(name: str | None) -> bool:
    return bool(name and name.endswith(".html.j2"))


#: How every template renders: a misspelt variable is an error, never a blank; HTML is
#: autoescaped; block tags leave no stray blank lines; files are read once.
_ENVIRONMENT: Final[dict[str, Any]] = {
    "undefined": jinja2.StrictUndefined,
    "autoescape": _autoescape,
    "trim_blocks": True,
    "lstrip_blocks": True,
    "keep_trailing_newline": False,
    "auto_reload": False,
}


class _BoundedLoader(jinja2.FileSystemLoader):
    """Reads template files, refusing one over MAX_TEMPLATE_BYTES before reading it.

    Jinja's own loader reads a whole file before anything can look at its size, so the
    file is found and read here, through :func:`~reminders.yamlio.read_bounded`.
    """

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        pieces = split_template_path(template)
        found = (Path(folder, *pieces) for folder in self.searchpath)
        path = next((p for p in found if p.is_file()), None)
        if path is None:
            raise jinja2.TemplateNotFound(template)
        try:
            source = read_bounded(path, MAX_TEMPLATE_BYTES).decode(self.encoding)
        except DocumentTooLarge:
            raise _TooLarge(template) from None
        mtime = path.stat().st_mtime

        def uptodate() -> bool:
            try:
                return path.stat().st_mtime == mtime
            except OSError:
                return False

        return source, str(path), uptodate


class _TooLarge(jinja2.TemplateError):
    """A template file over MAX_TEMPLATE_BYTES."""


class Templates:
    """The template set of one configuration directory."""

    def __init__(self, directory: Path) -> None:
        #: Root folder holding one sub-folder per language.
        self.directory = directory
        self._env = BoundedEnvironment(loader=_BoundedLoader(str(directory)), **_ENVIRONMENT)

    def _render(self, language: str, template: str, part: str, context: Mapping[str, Any]) -> str:
        name = f"{language}/{template}.{part}.j2"
        file = str(self.directory / name)
        try:
            with budget():
                return "".join(self._env.get_template(name).generate(context)).strip()
        except jinja2.TemplateNotFound:
            raise TemplateError(file, "template file is missing") from None
        except _TooLarge:
            raise TemplateError(
                file, f"the file is larger than the limit of {MAX_TEMPLATE_BYTES:,} bytes"
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                file, f"syntax error: {exc.message}", record=f"line {exc.lineno}"
            ) from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(file, f"unknown variable: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(file, f"does not render: {exc}") from None
        except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as exc:
            # What the template computes (1/0, a macro calling itself, int('x') of a
            # non-number) is the template's mistake, reported like any other.
            raise TemplateError(file, f"does not render: {type(exc).__name__}: {exc}") from None

    def render(
        self, channel: str, language: str, template: str, context: Mapping[str, Any]
    ) -> Rendered:
        """Render ``template`` for ``channel`` in ``language``; raises TemplateError."""
        if channel == "sms":
            text = self._render(language, template, "sms", context)
            if count_segments(text).segments > MAX_SEGMENTS:
                # A name like "Zoë" switches a whole SMS to UCS-2 and can double its
                # segments; the name without accents keeps the message within the limit.
                patient = {**context["patient"], "first_name": _fold(context)}
                folded = {**context, "patient": patient}
                shorter = self._render(language, template, "sms", folded)
                if count_segments(shorter).segments < count_segments(text).segments:
                    text = shorter
            return Rendered(text=text)
        subject = " ".join(self._render(language, template, "subject", context).split())
        return Rendered(
            text=self._render(language, template, "txt", context),
            subject=subject,
            html=self._render(language, template, "html", context),
        )


def _fold(context: Mapping[str, Any]) -> str:
    name = str(context["patient"]["first_name"])
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c))
