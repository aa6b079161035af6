"""The guides say what the code does, where a wrong sentence would mislead an operator.

Each test pins one statement a reader acts on against the code that makes it true.
"""

from __future__ import annotations

import re
from pathlib import Path

from reminders import tokens

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_operations_guide_says_unsubscribe_links_carry_no_address() -> None:
    """docs/operations.md describes the unsubscribe token as opaque, as :mod:`reminders.tokens` makes it, never as carrying the address."""
    guide = " ".join((DOCS / "operations.md").read_text(encoding="utf-8").split())
    token = tokens.sign("a secret key", 4242)
    assert tokens.verify("a secret key", token) == 4242
    assert "@" not in token
    assert not re.search(r"unsubscribe (urls|links?) carr(y|ies) the (email )?address", guide, re.I)
    assert re.search(r"unsubscribe urls carry no address", guide, re.I)


def test_the_readme_says_where_now_needs_simulate() -> None:
    """The README's command-line section says a ``--now`` more than a day ahead needs ``--simulate``, and both commands list it."""
    readme = " ".join((DOCS.parent / "README.md").read_text(encoding="utf-8").split())
    assert "a T more than a day ahead of this machine's clock is refused" in readme
    assert "unless `--simulate` is given too" in readme
    assert "`sync [--now T [--simulate]]" in readme
    assert "`tick [--now T [--simulate]]" in readme
