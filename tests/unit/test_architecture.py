"""The shape the code keeps: one place for statuses, one place for SQL, small modules.

These read the package's source (and import it in a clean interpreter); they guard the
architecture the README describes, so a later change cannot quietly undo it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from reminders.lifecycle import (
    AlertLevel,
    AlertStatus,
    AttemptOutcome,
    CheckInStatus,
    EnrollmentStatus,
    MessageKind,
    Outcome,
    ReminderStatus,
)

PACKAGE = Path(__file__).resolve().parents[2] / "reminders"
#: Longest a module of the package may be.
MAX_LINES = 500
#: Every status and outcome value; ``error`` is also the name of a column and of a JSON
#: field everywhere, so the tick outcome of that name is left out of the check.
STATUS_VALUES = {
    m.value
    for enum in (
        ReminderStatus,
        AttemptOutcome,
        EnrollmentStatus,
        Outcome,
        MessageKind,
        CheckInStatus,
        AlertStatus,
        AlertLevel,
    )
    for m in enum
} - {Outcome.ERROR.value}


def modules(*, skip: tuple[str, ...] = ()) -> list[Path]:
    """Every Python module of the package, except those under ``skip`` parts."""
    return [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if not any(part in skip for part in p.relative_to(PACKAGE).parts)
    ]


def status_literals(path: Path) -> list[str]:
    """String constants in ``path`` equal to a status or outcome value.

    Dictionary keys and subscripts are field names (``"error"`` the column, ``"paused"``
    a report key), not statuses, and are left out.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            names.update(id(k) for k in node.keys if k is not None)
        elif isinstance(node, ast.Subscript):
            names.add(id(node.slice))
    return [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in STATUS_VALUES
        and id(node) not in names
    ]


def test_status_and_outcome_strings_live_only_in_lifecycle() -> None:
    """No module but lifecycle.py and states.py (and the frozen migrations) spells a status or outcome as a string."""
    found = [
        hit
        for path in modules(skip=("migrations", "lifecycle.py", "states.py"))
        for hit in status_literals(path)
    ]
    assert found == []


def test_the_literal_check_finds_a_planted_status_string(tmp_path: Path) -> None:
    """The check above is not blind: a planted ``"planned"`` comparison is reported."""
    planted = PACKAGE / "_planted_for_test.py"
    planted.write_text('def due(row):\n    return row.status == "planned"\n', encoding="utf-8")
    try:
        assert status_literals(planted) == [f"reminders/{planted.name}:2: 'planned'"]
    finally:
        planted.unlink()


def test_no_module_is_longer_than_500_lines() -> None:
    """Every module of the package stays under 500 lines (split by concept past that)."""
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in modules(skip=("migrations",))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_only_the_store_imports_sqlalchemy() -> None:
    """SQL lives in reminders/store (and the Alembic migrations): nothing else imports SQLAlchemy."""
    offenders = []
    for path in modules(skip=("store", "migrations")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(PACKAGE.parent)}: {n}"
                for n in names
                if n.split(".")[0] in ("sqlalchemy", "sqlmodel", "alembic")
            ]
    assert offenders == []


def test_the_runtime_package_imports_without_test_dependencies() -> None:
    """Every runtime module imports with pytest, hypothesis, aiosmtpd and the test kit blocked."""
    runtime = [
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in modules(skip=("testing", "migrations"))
        if p.name != "__main__.py"
    ]
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED or name.startswith('reminders.testing'):\n"
        "            raise ImportError('blocked test dependency: ' + name)\n"
        "BLOCKED = {'pytest', 'hypothesis', 'aiosmtpd', 'schemathesis', 'trustme'}\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib\n"
        f"for name in {runtime!r}:\n"
        "    importlib.import_module(name)\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
