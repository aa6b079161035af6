"""The Jinja sandbox templates render in, with a bound on what one render may compute.

A template is configuration written by the clinic: a mistaken one (``range(10**9)``, a
string repeated 10**8 times, loops nested three deep, a macro that calls itself twice)
must fail ``validate`` or the reload in milliseconds, never hang or exhaust the service.
Jinja's own sandbox stops a template from reaching Python's internals, not from
computing too much; :class:`BoundedEnvironment` adds, per render:

* a budget of :data:`MAX_STEPS` steps: every loop iteration, call (macros, methods,
  ``caller()``), filter and intercepted operator spends one;
* a budget of :data:`MAX_OUTPUT` characters written, counted as they are written (also
  inside macros, ``{% set %}`` blocks and ``{% filter %}`` blocks);
* every value a template builds (an operator's result, a call's, a filter's, a list,
  tuple or dict written in it, ``~``) holds at most :data:`MAX_VALUE` characters or
  items, counting what nested lists share as often as they share it; an integer at most
  :data:`MAX_INT_BITS` bits;
* operations whose result can be far larger than their operands are checked *before*
  they run: ``*`` and ``**``, ``%`` and ``format`` widths, ``join``, ``replace``,
  ``center``, ``indent``, ``wordwrap``, ``tojson``'s indent, ``batch``, ``slice`` and
  ``sum``; string methods outside a plain list (``ljust``, ``zfill``, ``translate``...)
  are unavailable, ``range`` stops at :data:`MAX_RANGE` items, ``lipsum`` is gone and
  recursive ``for`` loops are refused at compile time;
* only the immutable sandbox: lists and dicts cannot be modified in place.

Exceeding a bound raises :class:`TemplateLimit`, a ``jinja2.TemplateError`` that the
renderer reports as a :class:`~reminders.errors.TemplateError` naming the file.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Steps (loop iterations, calls, filters, operators) one render may take.
MAX_STEPS: Final = 20_000
#: Characters one render may write, counting every intermediate buffer.
MAX_OUTPUT: Final = 1_000_000
#: Characters or items any one value may hold.
MAX_VALUE: Final = 100_000
#: List, tuple and dict items one render may build in all (each measured once).
MAX_BUILT: Final = 1_000_000
#: Items one ``range()`` may have.
MAX_RANGE: Final = 10_000
#: Largest integer a template may compute, in bits.
MAX_INT_BITS: Final = 256
#: Largest width or precision in a format (``%10s``, ``{:>10}``) or a padding filter.
MAX_WIDTH: Final = 1_000
#: String methods a template may call; the rest (``ljust``, ``zfill``, ``translate``,
#: ``expandtabs``...) can build huge strings from small arguments and no message needs them.
STR_METHODS: Final = frozenset(
    {
        *("capitalize", "casefold", "count", "endswith", "find", "format", "format_map"),
        *("index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "islower"),
        *("isnumeric", "isspace", "istitle", "isupper", "join", "lower", "lstrip"),
        *("partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex"),
        *("rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip"),
        *("swapcase", "title", "upper"),
    }
)
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class TemplateLimit(SecurityError):
    """A template went past a bound of :mod:`reminders.sandbox`."""


class _Budget:
    """What is left of one render's budgets, and the sizes of the lists it measured."""

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.output = MAX_OUTPUT
        self.built = MAX_BUILT
        #: id -> (the container, its size): each container is measured once, and kept so
        #: that its id is not reused by another while this render lasts.
        self.sizes: dict[int, tuple[object, int]] = {}

    def step(self, count: int = 1) -> None:
        self.steps -= count
        if self.steps < 0:
            raise TemplateLimit(
                f"takes more than {MAX_STEPS:,} steps (loop iterations, calls, filters)"
            )

    def build(self, items: int) -> None:
        self.built -= items
        if self.built < 0:
            raise TemplateLimit(f"builds more than {MAX_BUILT:,} list items in all")

    def write(self, characters: int) -> None:
        self.output -= characters
        if self.output < 0:
            raise TemplateLimit(f"writes more than {MAX_OUTPUT:,} characters")


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


@contextmanager
def budget() -> Iterator[None]:
    """Give the renders inside this block (in this thread) one fresh budget."""
    token = _BUDGET.set(_Budget())
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _current() -> _Budget:
    # Outside budget() (compiling, or a render someone started directly) a fresh budget
    # still bounds each single operation.
    return _BUDGET.get() or _Budget()


def size(value: object) -> int:
    """Characters or items in ``value``, nested lists and dicts counted in full.

    A list that appears ten times inside another counts ten times, so the size is what
    printing or comparing the value costs. Stops counting a little past MAX_VALUE.
    """
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, list | tuple | dict | set | frozenset):
        return 1
    budget = _current()
    known = budget.sizes.get(id(value))
    if known is not None:
        return known[1]
    items: Iterable[object] = (
        (x for pair in value.items() for x in pair) if isinstance(value, dict) else value
    )
    total = counted = 1
    for item in items:
        counted += 1
        total += size(item)
        if total > MAX_VALUE:
            break
    budget.build(counted)
    budget.sizes[id(value)] = (value, total)
    return total


def checked(value: Any) -> Any:
    """``value`` if it is within MAX_VALUE and MAX_INT_BITS; raises TemplateLimit if not."""
    if isinstance(value, str):  # the common case, first
        if len(value) > MAX_VALUE:
            raise TemplateLimit(f"builds a text of more than {MAX_VALUE:,} characters")
        return value
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimit(f"computes an integer of more than {MAX_INT_BITS} bits")
    if size(value) > MAX_VALUE:
        raise TemplateLimit(f"builds a value of more than {MAX_VALUE:,} characters or items")
    return value


def _expect(estimate: int, what: str) -> None:
    if estimate > MAX_VALUE:
        raise TemplateLimit(f"{what} would build more than {MAX_VALUE:,} characters or items")


def _width(value: object, what: str) -> None:
    if isinstance(value, int) and abs(value) > MAX_WIDTH:
        raise TemplateLimit(f"{what} of {value:,} is over the limit of {MAX_WIDTH:,}")


def check_printf(fmt: str) -> None:
    """Refuse a ``%`` format whose widths are huge or taken from the arguments (``%*s``)."""
    for match in _PRINTF.finditer(fmt):
        for number in match.groups():
            if number == "*":
                raise TemplateLimit("a '%*' width taken from the arguments is not allowed")
            if number is not None:
                _width(int(number), "a format width")


def check_format(fmt: str) -> None:
    """Refuse a ``str.format`` pattern with huge widths or widths taken from the arguments."""
    try:
        parts = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # the format call itself reports the mistake
    for _, _, spec, _ in parts:
        if spec and "{" in spec:
            raise TemplateLimit("a '{:{}}' width taken from the arguments is not allowed")
        for number in re.findall(r"\d+", spec or ""):
            _width(int(number), "a format width")


def bounded_range(*args: int) -> range:
    """``range`` for templates: at most MAX_RANGE items."""
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise TemplateLimit(f"range() of {len(result):,} items is over the limit of {MAX_RANGE:,}")
    return result


def _before_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too large, before computing it."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(times, int) and isinstance(seq, str | list | tuple):
                _expect(size(seq) * times, "repeating a text or list")
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1
        ):
            raise TemplateLimit(f"computes an integer of more than {MAX_INT_BITS} bits")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int):
        # |left| >= 2**(bits - 1), so the power has at least (bits - 1) * right bits.
        if (abs(left).bit_length() - 1) * right > MAX_INT_BITS:
            raise TemplateLimit(f"computes an integer of more than {MAX_INT_BITS} bits")
    elif operator == "%" and isinstance(left, str):
        check_printf(left)


def _str_call(method: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` for a string method, refused if its result would be too large.

    What ``join`` joins is made a list first, so that measuring it does not use it up.
    """
    text, name = getattr(method, "__self__", ""), getattr(method, "__name__", "")
    if name == "join" and args:
        items = list(args[0])
        _expect(size(items) + len(text) * len(items), "join()")
        return (items, *args[1:])
    if name == "replace" and len(args) >= 2:  # old and new
        _expect(_replaced(text, str(args[0]), str(args[1])), "replace()")
    return args


def _replaced(text: str, old: str, new: str) -> int:
    """The length of ``text.replace(old, new)``, without building it."""
    hits = text.count(old) if old else len(text) + 1
    return len(text) + hits * (len(new) - len(old))


def _filter_checks(name: str) -> Callable[..., Any] | None:
    """A check of a filter's arguments before it runs, by filter name: it returns the
    value to filter (what ``join`` joins, made a list so that measuring does not use it up)."""

    def width(value: Any, width: object = 80, *_: object, **__: object) -> Any:
        _width(width, f"{name}()'s width or count")
        return value

    def indent(value: Any, width: object = 4, *_: object, **__: object) -> Any:
        text = str(value)
        pad = width if isinstance(width, int) else len(str(width))
        _width(pad, "indent()'s width")
        _expect(len(text) + (text.count("\n") + 1) * pad, "indent()")
        return value

    def wordwrap(value: Any, width: object = 79, *args: object, **kwargs: object) -> Any:
        text = str(value)
        wrap = kwargs.get("wrapstring", args[1] if len(args) > 1 else None) or "\n"
        lines = len(text) // max(width if isinstance(width, int) else 1, 1) + 1
        _expect(len(text) + lines * len(str(wrap)), "wordwrap()")
        return value

    def join(value: Any, d: object = "", *_: object, **__: object) -> Any:
        items = [value] if isinstance(value, str) else list(value)
        _expect(size(items) + len(str(d)) * len(items), "join()")
        return value if isinstance(value, str) else items

    def replace(value: Any, old: object, new: object, *_: object, **__: object) -> Any:
        _expect(_replaced(str(value), str(old), str(new)), "replace()")
        return value

    def tojson(value: Any, indent: object = None) -> Any:
        if indent is not None and (not isinstance(indent, int) or indent > 8):
            raise TemplateLimit("tojson()'s indent must be a number of spaces up to 8")
        return value

    def summed(value: Any, attribute: object = None, start: object = 0) -> Any:
        if not isinstance(start, int | float):
            raise TemplateLimit("sum() adds numbers only")
        return value

    def printf(value: Any, *_: object, **__: object) -> Any:
        check_printf(str(value))
        return value

    checks: Mapping[str, Callable[..., Any]] = {
        "center": width,
        "batch": width,
        "slice": width,
        "indent": indent,
        "wordwrap": wordwrap,
        "join": join,
        "replace": replace,
        "tojson": tojson,
        "sum": summed,
        "format": printf,
    }
    return checks.get(name)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` spending a step, checked before (by name) and after (its result's size)."""
    offset = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    check = _filter_checks(name)

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _current().step()
        if check is not None and len(args) > offset:
            value = check(*args[offset:], **kwargs)
            args = (*args[:offset], value, *args[offset + 1 :])
        return checked(func(*args, **kwargs))

    return bounded


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles loops, output, ``~`` and written lists so that the budgets see them."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        if node.recursive:
            self.fail("recursive loops are not allowed in message templates", node.lineno)
        node.iter = nodes.Call(
            nodes.EnvironmentAttribute("iterate"), [node.iter], [], None, None
        ).set_lineno(node.iter.lineno)
        super().visit_For(node, frame)

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        # Text written out in the template counts each time it is written (in a loop, a
        # macro); values computed at run time count in BoundedEnvironment.finalize.
        fixed = sum(
            len(child.data if isinstance(child, nodes.TemplateData) else child.value)
            for child in node.nodes
            if isinstance(child, nodes.TemplateData)
            or (isinstance(child, nodes.Const) and isinstance(child.value, str))
        )
        if fixed:
            self.writeline(f"environment.written({fixed})", node)
        super().visit_Output(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self._checked(super().visit_Concat, node, frame)

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._checked(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._checked(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # a target: ``for a, b in ...``, ``set a, b = ...``
            super().visit_Tuple(node, frame)
        else:
            self._checked(super().visit_Tuple, node, frame)

    def _checked(self, visit: Callable[[Any, Frame], None], node: nodes.Node, frame: Frame) -> None:
        self.write("environment.checked(")
        visit(node, frame)
        self.write(")")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable Jinja sandbox with per-render budgets (see the module docstring).

    Render inside :func:`budget` to give each render its own budgets.
    """

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=self._finalize, **options)
        self.globals["range"] = bounded_range
        self.globals.pop("lipsum", None)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    @staticmethod
    def checked(value: Any) -> Any:
        """Compiled in around ``~`` and every list, tuple and dict a template writes."""
        return checked(value)

    @staticmethod
    def written(characters: int) -> None:
        """Compiled in before every piece of text the template writes out."""
        _current().write(characters)

    @staticmethod
    def iterate(iterable: Iterable[Any]) -> Iterator[Any]:
        """Compiled in around what every ``for`` loop iterates: a step per item."""
        budget = _current()
        for item in iterable:
            budget.step()
            yield item

    @staticmethod
    def _finalize(value: Any) -> Any:
        """Every value written out counts against the output budget."""
        _current().write(len(value) if isinstance(value, str) else size(value))
        return value

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """The immutable sandbox's rule, and only :data:`STR_METHODS` of strings."""
        if isinstance(obj, str) and attr not in STR_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``*``, ``**``, ``+`` and ``%``: a step, checked before and after."""
        _current().step()
        _before_binop(operator, left, right)
        return checked(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Every call a template makes: a step, string methods checked, the result measured."""
        _current().step()
        if isinstance(getattr(obj, "__self__", None), str) and hasattr(obj, "__name__"):
            args = _str_call(obj, args)
        return checked(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` and ``format_map``, refused at once if their widths are huge."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            check_format(value.__self__)
        return wrapped
