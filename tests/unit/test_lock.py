"""The container image's lock (deploy/requirements.lock) agrees with pyproject.toml.

The image installs exactly the lock, every file checked against its sha256, then the
project with ``--no-deps``: a dependency added to pyproject.toml but not locked would be
missing from the image, one removed would still ship. Regenerate with ``deploy/lock.sh``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

LOCK = REPO / "deploy" / "requirements.lock"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
#: How pip-compile names what pyproject.toml asks for directly.
RUNTIME_ROOT = "recovery-reminders (pyproject.toml)"
BUILD_ROOT = "recovery-reminders (pyproject.toml::build-system.requires)"
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s\\;]+)")


@dataclass
class Pin:
    """One package of the lock."""

    #: The pinned version.
    version: Version
    #: sha256 hashes of its files.
    hashes: list[str] = field(default_factory=list)
    #: What asked for it (pip-compile's ``# via`` annotations).
    via: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[str, Pin]:
    """The pins of a pip-compile lock, by canonical name."""
    pins: dict[str, Pin] = {}
    pin: Pin | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if match := _PIN.match(line):
            pin = pins[canonicalize_name(match["name"])] = Pin(Version(match["version"]))
        elif not line.startswith(" "):
            pin = None  # a comment of the file itself
        elif pin is not None and stripped.startswith("--hash=sha256:"):
            pin.hashes.append(stripped.removeprefix("--hash=sha256:").rstrip(" \\"))
        elif pin is not None and stripped.startswith("#"):
            parent = stripped.lstrip("#").strip().removeprefix("via").strip()
            if parent:
                pin.via.append(parent)
    return pins


def asked_for() -> dict[str, tuple[str, Requirement]]:
    """pyproject.toml's runtime dependencies and build requirements: name -> (root, requirement)."""
    doc = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = {}
    for root, specs in (
        (RUNTIME_ROOT, doc["project"]["dependencies"]),
        (BUILD_ROOT, doc["build-system"]["requires"]),
    ):
        for spec in specs:
            requirement = Requirement(spec)
            wanted[canonicalize_name(requirement.name)] = (root, requirement)
    return wanted


def test_every_dependency_in_pyproject_is_locked_within_its_range() -> None:
    """Each runtime dependency and build requirement of pyproject.toml is pinned in the lock at a version it allows."""
    pins = read_lock(LOCK)
    problems = []
    for name, (_, requirement) in sorted(asked_for().items()):
        if name not in pins:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(pins[name].version, prereleases=True):
            problems.append(f"{requirement} but the lock pins {name}=={pins[name].version}")
    assert problems == [], "run deploy/lock.sh: " + "; ".join(problems)


def test_the_lock_holds_nothing_pyproject_does_not_ask_for() -> None:
    """What the lock pins as a direct dependency is what pyproject.toml lists, and every other pin is needed by one."""
    pins = read_lock(LOCK)
    direct = {
        (name, parent)
        for name, pin in pins.items()
        for parent in pin.via
        if parent in (RUNTIME_ROOT, BUILD_ROOT)
    }
    assert direct == {(name, root) for name, (root, _) in asked_for().items()}, "run deploy/lock.sh"
    orphans = [
        name
        for name, pin in pins.items()
        if not any(parent in (RUNTIME_ROOT, BUILD_ROOT) or parent in pins for parent in pin.via)
    ]
    assert orphans == [], "run deploy/lock.sh"


def test_every_pin_carries_its_hashes() -> None:
    """Each pinned package lists the sha256 of its files, so ``pip install --require-hashes`` accepts the lock."""
    pins = read_lock(LOCK)
    assert len(pins) > len(asked_for())  # the transitive dependencies are there too
    unhashed = [name for name, pin in pins.items() if not pin.hashes]
    assert unhashed == []
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for pin in pins.values() for h in pin.hashes)


def test_the_image_installs_the_lock_and_the_project_without_resolving() -> None:
    """The Dockerfile installs the lock with hashes required, then the project with --no-deps, and names no undefined extra."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    flat = re.sub(r"\\\n\s*", " ", text)  # continuation lines joined
    runs = " && ".join(line[4:] for line in flat.splitlines() if line.startswith("RUN "))
    assert "COPY deploy/requirements.lock" in text
    assert re.search(r"pip install --require-hashes .*-r requirements\.lock", runs), runs
    assert re.search(r"pip install --no-deps --no-build-isolation \.( |$)", runs), runs
    extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    named = set(re.findall(r"\[([a-z][\w-]*)\]", text))
    assert named <= extras.keys(), f"the Dockerfile names extras pyproject.toml lacks: {named}"
