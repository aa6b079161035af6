"""``python -m reminders.testing.twilio``: a fake Twilio in its own process."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from reminders.testing.twilio.server import FakeTwilio
from reminders.testing.twilio.values import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reminders.testing.twilio``: serve until SIGTERM or SIGINT.

    Prints the base URL on stdout (one line) once it accepts connections.
    """
    parser = argparse.ArgumentParser(
        prog="python -m reminders.testing.twilio",
        description="A local Twilio-compatible HTTP endpoint for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of every request")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="fraction of sends to fail")
    parser.add_argument("--seed", type=int, default=None, help="seed of the failure mix")
    parser.add_argument("--record", type=Path, help="append accepted messages as JSON lines")
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN, help="'' accepts any token")
    parser.add_argument(
        "--unsubscribed", action="append", default=[], help="number answered 21610 (repeatable)"
    )
    args = parser.parse_args(argv)

    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    with FakeTwilio(
        host=args.host,
        port=args.port,
        account_sid=args.account_sid,
        auth_token=args.auth_token or None,
        unsubscribed=args.unsubscribed,
        latency=args.latency_ms / 1000,
        fail_rate=args.fail_rate,
        seed=args.seed,
        record_path=args.record,
    ) as fake:
        print(fake.url, flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
