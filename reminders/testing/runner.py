"""The installed ``reminders`` command run as a subprocess, as a user or a service manager would.

Every acceptance test and benchmark starts the command through :func:`run` (to completion)
or :func:`spawn` (a long-running ``run``), with a clean environment: nothing of the
caller's own ``REMINDERS_*``, ``TWILIO_*`` or ``SMTP_*`` settings leaks in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

#: The console script installed beside the running interpreter.
REMINDERS: Final = Path(sys.executable).parent / "reminders"
#: Generous per-command limit: a hung command must fail the test, not hang it.
TIMEOUT: Final = 60
#: Environment prefixes that would point the command at other config or real providers.
_LEAKY: Final = ("REMINDERS_", "TWILIO_", "SMTP_", "EMAIL_FROM")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without the service's own settings (as in CI), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY)}
    env["CI"] = "true"
    return {**env, **(extra or {})}


@dataclass(frozen=True)
class Result:
    """What one command printed and how it exited."""

    #: The command line, for failure messages.
    argv: list[str]
    #: Exit status.
    code: int
    #: Standard output.
    stdout: str
    #: Standard error.
    stderr: str

    def json(self) -> Any:
        """Standard output parsed as JSON."""
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\n-> exit {self.code}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def argv(config: Path, database: str, args: Sequence[str]) -> list[str]:
    """``reminders --config CONFIG --database DATABASE *args``."""
    return [str(REMINDERS), "--config", str(config), "--database", database, *args]


def run(
    config: Path,
    database: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
    stdin: str | None = None,
) -> Result:
    """Run one command to completion with ``env`` added to a clean environment.

    ``stdin`` is written to its standard input (else it reads nothing: no terminal).
    """
    return run_as_typed(*argv(config, database, args)[1:], env=env, timeout=timeout, stdin=stdin)


def run_as_typed(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
    stdin: str | None = None,
) -> Result:
    """``reminders *args`` exactly as given (no ``--config``/``--database`` put first), in ``cwd``."""
    command = [str(REMINDERS), *args]
    feed: dict[str, Any] = {"stdin": subprocess.DEVNULL} if stdin is None else {"input": stdin}
    proc = subprocess.run(  # noqa: S603  # the project's own console script
        command,
        cwd=cwd,
        env=clean_env(env),
        **feed,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(command, proc.returncode, proc.stdout, proc.stderr)


def spawn(
    config: Path,
    database: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a command (``run``, a ``tick`` to kill) and return at once; the caller stops it."""
    return subprocess.Popen(  # noqa: S603  # the project's own console script
        argv(config, database, args),
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
    )
