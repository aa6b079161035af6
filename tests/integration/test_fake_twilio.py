"""The shipped Twilio-compatible endpoint, driven by the real ``twilio`` client."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from reminders.testing.twilio import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    FakeTwilio,
    Fault,
    read_record,
    twilio_client,
)

TO = "+15555550123"
OTHER = "+15555550177"
FROM = "+15555550100"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """A running fake, stopped (connections and client sessions closed) after the test."""
    with FakeTwilio() as running:
        yield running


@pytest.fixture
def client(fake: FakeTwilio) -> Client:
    """A real twilio client pointed at the fake."""
    return twilio_client(fake)


def send(client: Client, to: str = TO, **extra: Any) -> Any:
    """Create one message with the client's usual arguments."""
    return client.messages.create(to=to, from_=FROM, body="Keep the sling on tonight.", **extra)


def test_create_returns_message_and_fake_records_it(fake: FakeTwilio, client: Client) -> None:
    """A created message comes back as a queued SM resource and the fake records its fields."""
    created = send(
        client, status_callback="http://127.0.0.1:9/twilio/status?reminder=7", validity_period=3600
    )

    assert created.sid.startswith("SM")
    assert len(created.sid) == 34
    assert created.status == "queued"
    assert created.to == TO
    assert created.from_ == FROM
    assert created.num_segments == "1"
    [recorded] = fake.messages
    assert recorded.sid == created.sid
    assert recorded.account_sid == DEFAULT_ACCOUNT_SID
    assert (recorded.to, recorded.body) == (TO, "Keep the sling on tonight.")
    assert recorded.status_callback == "http://127.0.0.1:9/twilio/status?reminder=7"
    assert recorded.validity_period == 3600
    assert recorded.date_created.tzinfo is not None
    assert created.date_created == recorded.date_created


def test_invalid_number_raises_21211(fake: FakeTwilio, client: Client) -> None:
    """A 'To' that is not E.164 is refused with status 400 and Twilio code 21211."""
    with pytest.raises(TwilioRestException) as caught:
        send(client, to="555-0123")

    assert (caught.value.status, caught.value.code) == (400, 21211)
    assert "555-0123" in caught.value.msg
    assert fake.messages == []


def test_unsubscribed_number_raises_21610(fake: FakeTwilio, client: Client) -> None:
    """A number marked unsubscribed is refused with status 400 and Twilio code 21610."""
    fake.unsubscribe(TO)

    with pytest.raises(TwilioRestException) as caught:
        send(client)

    assert (caught.value.status, caught.value.code) == (400, 21610)
    assert fake.messages == []


def test_missing_sender_and_wrong_token_are_refused(fake: FakeTwilio) -> None:
    """No From nor MessagingServiceSid gives 21603; a wrong auth token gives 401 with 20003."""
    client = twilio_client(fake)
    with pytest.raises(TwilioRestException) as no_sender:
        client.messages.create(to=TO, body="hello")
    intruder = Client(DEFAULT_ACCOUNT_SID, "wrong-token", http_client=TwilioHttpClient())
    intruder.api.base_url = fake.url
    try:
        with pytest.raises(TwilioRestException) as bad_auth:
            send(intruder)
    finally:
        intruder.http_client.session.close()

    assert (no_sender.value.status, no_sender.value.code) == (400, 21603)
    assert (bad_auth.value.status, bad_auth.value.code) == (401, 20003)
    assert fake.messages == []


def test_rate_limit_carries_retry_after(fake: FakeTwilio) -> None:
    """A queued 429 fault answers Twilio code 20429 with a Retry-After header the client sees."""
    seen: list[requests.Response] = []
    http = TwilioHttpClient(request_hooks={"response": [lambda r, *a, **k: seen.append(r)]})
    client = twilio_client(fake, http_client=http)
    fake.fail_next(Fault.status(429, retry_after=7))

    with pytest.raises(TwilioRestException) as caught:
        send(client)

    assert (caught.value.status, caught.value.code) == (429, 20429)
    assert seen[-1].headers["Retry-After"] == "7"
    [request] = fake.requests
    assert request.fault == Fault.status(429, retry_after=7)
    assert (request.status, request.response_headers["Retry-After"]) == (429, "7")
    assert fake.messages == []
    assert send(client).sid == fake.messages[0].sid  # the fault was used up


def test_accept_then_500_records_the_message(fake: FakeTwilio, client: Client) -> None:
    """An accept-then-500 fault keeps the message although the client gets a 500."""
    fake.fail_next(Fault.accept_then_500())

    with pytest.raises(TwilioRestException) as caught:
        send(client)

    assert caught.value.status == 500
    assert [m.to for m in fake.messages] == [TO]


def test_timeout_makes_the_client_time_out(fake: FakeTwilio) -> None:
    """A timeout fault outlasts a 0.5 s client timeout, which raises ReadTimeout, and records nothing."""
    client = twilio_client(fake, timeout=0.5)
    fake.fail_next(Fault.timeout(30))

    with pytest.raises(requests.ReadTimeout):
        send(client)

    assert fake.messages == []
    assert fake.requests[0].status is None


def test_accept_then_timeout_records_then_hangs(fake: FakeTwilio) -> None:
    """An accept-then-timeout fault records the message while the client times out."""
    client = twilio_client(fake, timeout=0.5)
    fake.fail_next(Fault.accept_then_timeout(30))

    with pytest.raises(requests.ReadTimeout):
        send(client)

    assert [m.to for m in fake.messages] == [TO]


def test_dropped_connection_records_nothing(fake: FakeTwilio, client: Client) -> None:
    """A drop-connection fault closes the socket unanswered, before anything is recorded."""
    fake.fail_next(Fault.drop_connection())

    with pytest.raises(requests.ConnectionError):
        send(client)

    assert fake.messages == []
    assert send(client).sid == fake.messages[0].sid


def test_list_filters_by_recipient_and_date_sent_after() -> None:
    """list(to=..., date_sent_after=...) finds the newer message to that number only."""
    now = [datetime(2026, 3, 1, 9, 0, tzinfo=UTC)]
    with FakeTwilio(clock=lambda: now[0]) as fake:
        client = twilio_client(fake)
        send(client)
        now[0] += timedelta(days=1)
        newer = send(client)
        send(client, to=OTHER)

        found = client.messages.list(to=TO, date_sent_after=now[0] - timedelta(hours=1))

        assert [m.sid for m in found] == [newer.sid]
        assert found[0].date_sent == now[0]
        assert fake.requests[-1].params["DateSent>"] == "2026-03-02T08:00:00Z"


def test_list_pages_newest_first_and_terminates(fake: FakeTwilio, client: Client) -> None:
    """The client's list() follows next_page_uri through every page, newest first."""
    created = [send(client).sid for _ in range(5)]

    found = client.messages.list(to=TO, page_size=2)

    assert [m.sid for m in found] == created[::-1]
    assert [r.method for r in fake.requests].count("GET") == 3


def test_fault_hook_and_fail_rate_pick_create_requests() -> None:
    """A fault hook fails the create requests it names; fail_rate fails about that fraction."""
    with FakeTwilio(
        faults=lambda index, _params: Fault.status(503) if index == 1 else None
    ) as fake:
        client = twilio_client(fake)
        send(client)
        with pytest.raises(TwilioRestException) as caught:
            send(client)
        send(client)
        assert caught.value.status == 503
        assert len(fake.messages) == 2

    with FakeTwilio(fail_rate=0.2, seed=7) as fake:
        client = twilio_client(fake)
        failed = 0
        for _ in range(100):
            try:
                send(client)
            except TwilioRestException:
                failed += 1
        kinds = {(r.fault.kind, r.fault.http_status) for r in fake.requests if r.fault}
        assert 10 <= failed <= 30
        assert kinds <= {
            ("status", 500),
            ("status", 503),
            ("status", 429),
            ("accept_then_500", None),
        }
        assert len(kinds) >= 3


def test_subprocess_serves_records_and_exits_on_sigterm(tmp_path: Path) -> None:
    """python -m reminders.testing.twilio prints its URL, records an accepted message, exits on SIGTERM."""
    record = tmp_path / "accepted.jsonl"
    command = [
        sys.executable,
        "-m",
        "reminders.testing.twilio",
        "--port",
        "0",
        "--record",
        str(record),
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 10)
            assert ready, "the fake did not print its URL"
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")

            http = TwilioHttpClient(timeout=5)
            client = Client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, http_client=http)
            client.api.base_url = url
            try:
                created = send(client)
            finally:
                http.session.close()

            [recorded] = read_record(record)
            assert (recorded.sid, recorded.to) == (created.sid, TO)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
