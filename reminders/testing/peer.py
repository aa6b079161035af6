"""What every test peer shares: a server on a background thread that a ``with`` block runs.

Ports, for tests that run in parallel (pytest-xdist workers, other test runs on the machine):

* an in-process server binds port 0 itself, or takes a socket from :func:`listening_socket`
  (uvicorn's ``Server.run(sockets=[...])``): no other process can take that port;
* a server that must be told a number before it binds (the ``reminders run`` subprocess,
  aiosmtpd) gets :func:`free_port`, and retries with another one if the port was taken in
  between (:data:`PORT_IN_USE` tells that failure apart);
* a test that needs a port where connections are refused uses :func:`closed_port`, which
  holds the port (bound, never listening) so no other test can start a server on it.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Final, Self

#: What a server that lost the race for its port says (uvicorn logs the OS error text).
PORT_IN_USE: Final = "address already in use"
#: How many ports a server tries before the test fails.
PORT_ATTEMPTS: Final = 5


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
    """A TCP port nobody listens on right now (another process may take it before you bind it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket listening on a free port of ``host``, for a server that accepts a socket."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


@contextmanager
def closed_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port where every connection is refused, kept so while the block runs.

    The port is bound but never listened on: the kernel refuses connections to it, and no
    other server (of this test run or another) can bind it until the block ends.
    """
    with socket.socket() as held:
        held.bind((host, 0))
        port: int = held.getsockname()[1]
        yield port


def is_port_in_use(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is the OS refusing a bind to a taken port."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.EADDRINUSE:
            return True
        seen = seen.__cause__ or seen.__context__
    return False
