"""YAML reading with YAML 1.2 scalars: ``no`` stays a string, ``10:00`` stays a time string.

PyYAML follows YAML 1.1, where ``NO`` (Norway) is ``False`` and ``10:00`` is the
sexagesimal integer 600. Coordinators write exactly those, so we resolve only
``true``/``false`` as booleans and plain decimal integers as integers. A number with
a leading zero (an MRN like ``00123``, a national phone number) stays text, where
YAML 1.1 would read it as octal. Dates stay text too (YAML 1.2 has no timestamp type),
so an impossible date is reported against its record by the parser instead of failing
the whole file. Duplicate keys, which YAML forbids and PyYAML silently drops, are errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from reminders.errors import ConfigError

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


StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^-?(?:0|[1-9][0-9]*)$"), list("-0123456789")
)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file; raises ``yaml.YAMLError`` (also for non-UTF-8 text) or ``OSError``."""
    with path.open(encoding="utf-8") as handle:
        try:
            return yaml.load(handle, Loader=StrictLoader)  # noqa: S506  # StrictLoader is a SafeLoader
        except UnicodeDecodeError as exc:
            raise yaml.YAMLError(f"not UTF-8 text: {exc}") from None


def read_config_file(path: Path, error: type[ConfigError], hint: str) -> Any:
    """Parse a configuration file; every way it can be unreadable becomes ``error`` naming it.

    ``hint`` says how to point the service at another file when this one is missing.
    """
    file = str(path)
    try:
        return load_yaml(path)
    except FileNotFoundError:
        raise error(file, f"file not found ({hint})") from None
    except OSError as exc:
        raise error(file, f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise error(file, f"not valid YAML: {exc}") from None
