"""What every test peer shares: a server on a background thread that a ``with`` block runs."""

from __future__ import annotations

import socket
from types import TracebackType
from typing import Self


class Peer:
    """A server for tests; ``with peer:`` starts it (if it is not running) and stops it."""

    @property
    def running(self) -> bool:
        """Whether it serves now."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start serving; returns self."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving and release its port."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
