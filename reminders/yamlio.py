"""YAML reading with YAML 1.2 scalars: ``no`` stays a string, ``10:00`` stays a time string.

PyYAML follows YAML 1.1, where ``NO`` (Norway) is ``False`` and ``10:00`` is the
sexagesimal integer 600. Coordinators write exactly those, so we resolve only
``true``/``false`` as booleans and plain decimal integers as integers. A number with
a leading zero (an MRN like ``00123``, a national phone number) stays text, where
YAML 1.1 would read it as octal; so does one of more than 18 digits. Dates stay text
too (YAML 1.2 has no timestamp type), so an impossible date is reported against its
record by the parser instead of failing the whole file. Duplicate keys, which YAML forbids and PyYAML silently drops, are errors.

Every file is bounded before and while it is parsed, so a wrong or hostile file is
refused in milliseconds instead of exhausting the service's memory: its size is checked
before parsing (:data:`MAX_CONFIG_BYTES` unless the caller allows more), nesting is
limited to :data:`MAX_DEPTH` levels, a recursive alias (``&a [*a]``) is refused, and
aliases may make the document at most :data:`ALIAS_GROWTH` times larger than what it
writes out (at least :data:`ALIAS_ALLOWANCE` values): a "billion laughs" file of nine
nested aliases of nine aliases is refused, one shared block of defaults per record is not.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.constructor import ConstructorError

from reminders.errors import ConfigError

#: Largest configuration file read, in bytes (schedules.yaml); checked before parsing.
MAX_CONFIG_BYTES: Final = 1 << 20
#: Deepest nesting of mappings and lists (schedules.yaml needs 7).
MAX_DEPTH: Final = 50
#: Aliases may add at most this many times the values a document writes out...
ALIAS_GROWTH: Final = 4
#: ... or this many values, whichever is more.
ALIAS_ALLOWANCE: Final = 100_000

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Implicit YAML 1.1 types that YAML 1.2 does not have, or that we resolve more strictly.
_DROPPED_TAGS = (
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:value",
)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictLoader(_Base):  # type: ignore[misc]  # PyYAML's loaders are untyped
    """A safe loader with YAML 1.2 booleans and integers that rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build a mapping, refusing a key written twice (merge keys ``<<`` may repeat)."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable: the base constructor reports it
                continue
            if duplicate:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]

    def get_single_node(self) -> yaml.Node | None:
        """The document's node graph, refused if aliases or nesting make it too large."""
        node: yaml.Node | None = super().get_single_node()
        if node is not None:
            check_size(node)
        return node


class DocumentTooLarge(yaml.YAMLError):
    """A document refused before it is built: too large, too deep, or a recursive alias."""


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _where(node: yaml.Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


def check_size(root: yaml.Node) -> None:
    """Raise DocumentTooLarge unless the document is within the limits of this module.

    Walks the node graph once (a node that aliases share is visited once) and counts
    what the document would be with every alias written out in full.
    """
    expanded: dict[int, int] = {}
    path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, finished = stack.pop()
        key = id(node)
        if finished:
            path.discard(key)
            expanded[key] = 1 + sum(expanded[id(child)] for child in _children(node))
            continue
        if key in expanded:
            continue  # an alias of a node already counted
        if key in path:
            raise DocumentTooLarge(f"a recursive alias at {_where(node)}")
        if depth > MAX_DEPTH:
            raise DocumentTooLarge(f"nested more than {MAX_DEPTH} levels deep at {_where(node)}")
        path.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node))
    written, total = len(expanded), expanded[id(root)]
    if total > max(ALIAS_ALLOWANCE, ALIAS_GROWTH * written):
        raise DocumentTooLarge(
            f"its aliases (*name) expand {written:,} values into {total:,}, more than "
            f"{ALIAS_GROWTH} times as many: write the values out instead"
        )


StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# At most 18 digits: a longer run of digits (an identifier) stays text, and Python would
# refuse to convert one of more than 4,300 digits with a ValueError, not a YAML error.
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^-?(?:0|[1-9][0-9]{0,17})$"), list("-0123456789")
)


def check_file_size(path: Path, max_bytes: int) -> None:
    """Raise DocumentTooLarge if ``path`` has more than ``max_bytes`` bytes (OSError if absent)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise DocumentTooLarge(
            f"the file is too large: {size:,} bytes, the limit is {max_bytes:,} bytes"
        )


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path``; raises DocumentTooLarge past ``max_bytes``, or ``OSError``.

    The size is checked before reading, and the read itself stops one byte past the
    limit (a file growing meanwhile, a device or a pipe).
    """
    check_file_size(path, max_bytes)
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DocumentTooLarge(f"the file is over the limit of {max_bytes:,} bytes")
    return data


def load_yaml(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """Parse a YAML file; raises ``yaml.YAMLError`` (also for non-UTF-8 text) or ``OSError``.

    :class:`DocumentTooLarge` (a ``yaml.YAMLError``) refuses a file over ``max_bytes``,
    nested too deeply or inflated by aliases.
    """
    data = read_bounded(path, max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise yaml.YAMLError(f"not UTF-8 text: {exc}") from None
    stream = io.StringIO(text)
    stream.name = str(path)  # parser errors name the file
    try:
        return yaml.load(stream, Loader=StrictLoader)  # noqa: S506  # StrictLoader is a SafeLoader
    except RecursionError:  # the pure-Python parser, when libyaml is missing
        raise DocumentTooLarge(f"nested more than {MAX_DEPTH} levels deep") from None


def read_config_file(
    path: Path, error: type[ConfigError], hint: str, max_bytes: int = MAX_CONFIG_BYTES
) -> Any:
    """Parse a configuration file; every way it can be unreadable becomes ``error`` naming it.

    ``hint`` says how to point the service at another file when this one is missing;
    ``max_bytes`` is the largest file accepted.
    """
    with reading(path, error, hint):
        try:
            return load_yaml(path, max_bytes)
        except DocumentTooLarge:
            raise
        except yaml.YAMLError as exc:
            raise error(str(path), f"not valid YAML: {exc}") from None


@contextmanager
def reading(path: Path, error: type[ConfigError], hint: str) -> Iterator[None]:
    """Turn a missing, unreadable or refused (:class:`DocumentTooLarge`) file into ``error``
    naming it; ``hint`` says how to point the service at another file."""
    file = str(path)
    try:
        yield
    except FileNotFoundError:
        raise error(file, f"file not found ({hint})") from None
    except OSError as exc:
        raise error(file, f"cannot read: {exc.strerror}") from None
    except DocumentTooLarge as exc:
        raise error(file, f"refused: {exc}") from None
