"""Bounded JSON reading: size and nesting are checked before the document is parsed.

Like :mod:`reminders.yamlio` for YAML, a wrong or hostile file is refused before it can
exhaust the service: its size against the caller's limit before it is read, and its
nesting (at most :data:`~reminders.yamlio.MAX_DEPTH` levels) by a scan of its brackets
outside strings before ``json`` builds anything, so a ``[[[[...`` file a few megabytes
long never reaches the parser's recursion. A key written twice in one object (which
JSON parsers resolve silently, each its own way) is an error, and so are ``NaN`` and
``Infinity``, which are not JSON.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

from reminders.errors import ConfigError
from reminders.yamlio import MAX_DEPTH, DocumentTooLarge, read_bounded, reading

#: A JSON string, with its escapes: strings are left out when counting depth.
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
#: An innermost pair of brackets.
_PAIR: Final = re.compile(rb"\[\]|\{\}")
#: Every byte but the four brackets.
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")


def check_depth(data: bytes, limit: int = MAX_DEPTH) -> None:
    """Raise DocumentTooLarge if ``data`` nests arrays and objects more than ``limit`` deep.

    Each pass removes the innermost pairs of brackets (in C, over the brackets only), so
    the depth is the number of passes. What is left after ``limit`` passes is refused,
    unless it is a few brackets never closed (a truncated file), which the parser reports.
    """
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return
        brackets = _PAIR.sub(b"", brackets)
    if not brackets or (len(brackets) <= limit and not brackets.strip(b"[{")):
        return
    raise DocumentTooLarge(f"nested more than {limit} levels deep (or its brackets do not pair up)")


class DuplicateKey(ValueError):
    """A key written twice in one JSON object."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(f"the key {key[:64]!r} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def read_json(path: Path, error: type[ConfigError], hint: str, max_bytes: int) -> Any:
    """Parse a JSON file within ``max_bytes``; every way it can be unreadable becomes
    ``error`` naming the file (``hint`` says how to point the service at another one)."""
    file = str(path)
    with reading(path, error, hint):
        data = read_bounded(path, max_bytes)
        check_depth(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(file, f"not UTF-8 text (byte {exc.start:,})") from None
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise error(
            file, f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except DuplicateKey as exc:
        raise error(file, f"not valid JSON: {exc}") from None
    except ValueError as exc:
        raise error(file, f"not valid JSON: {exc}") from None
    except RecursionError:  # pragma: no cover - check_depth refuses such a file first
        raise error(file, f"refused: nested more than {MAX_DEPTH} levels deep") from None
