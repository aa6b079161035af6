"""The guides say what the code does, where a wrong sentence would mislead an operator.

Each test pins one statement a reader acts on against the code that makes it true.
"""

from __future__ import annotations

import re
from pathlib import Path

from reminders import tokens
from reminders.accounts import IDLE_TIMEOUT, MIN_PASSWORD
from reminders.patients import MAX_PATIENTS_BYTES
from reminders.sandbox import MAX_INT_BITS, MAX_OUTPUT, MAX_RANGE, MAX_STEPS, MAX_VALUE
from reminders.templates import MAX_TEMPLATE_BYTES
from reminders.web.limits import MAX_BODY
from reminders.yamlio import ALIAS_GROWTH, MAX_CONFIG_BYTES, MAX_DEPTH

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


def test_the_threat_model_is_linked_and_names_only_code_and_tests_that_exist() -> None:
    """docs/security.md is linked from the README and the operations guide, every file it names exists, and its limits are the code's."""
    model = (DOCS / "security.md").read_text(encoding="utf-8")
    assert "docs/security.md" in (DOCS.parent / "README.md").read_text(encoding="utf-8")
    assert "(security.md)" in (DOCS / "operations.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:reminders|tests)/[\w/.]+?)`", model))
    assert len(named) > 20
    missing = sorted(p for p in named if not (DOCS.parent / p.split(" ")[0]).exists())
    assert not missing, missing
    flat = " ".join(model.split())
    assert f"at most {MAX_BODY // 1024} KiB" in flat
    for limit in (MAX_STEPS, MAX_OUTPUT, MAX_VALUE, MAX_RANGE):
        assert f"{limit:,}" in flat
    assert f"at most {MAX_INT_BITS} bits" in flat
    assert f"files of at most {MAX_TEMPLATE_BYTES // 1024} KiB" in flat
    assert f"({MAX_CONFIG_BYTES >> 20} MiB; {MAX_PATIENTS_BYTES >> 20} MiB for patients)" in flat
    assert f"at most {MAX_DEPTH} levels deep" in flat
    assert f"more than {ALIAS_GROWTH} times larger" in flat
    assert f"passwords of {MIN_PASSWORD} characters or more" in flat
    assert f"idle after {IDLE_TIMEOUT.total_seconds() / 3600:.0f} hours" in flat
