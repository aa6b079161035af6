"""Acceptance: ``reminders run`` as a subprocess, against local SMTP and Twilio-compatible peers.

Each test starts the installed executable on a free port with the production
environment variables (helpers in :mod:`.service`), talks to it over HTTP as Twilio, a
mail client or a Prometheus scraper would, and asserts on what the in-process
:class:`~reminders.testing.twilio.FakeTwilio` and :class:`~reminders.testing.smtp.SmtpRecorder`
received and on ``reminders timeline --json``. Day-0 milestones are due at real instants
a few seconds ahead (or already due, a minute ago), so the service's own clock drives
every send.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reminders.testing.smtp import SmtpRecorder
from reminders.testing.twilio import FakeMessage, FakeTwilio
from tests.twilio_webhooks import inbound_form, status_form

from .service import (
    CLINIC_NAME,
    CLINIC_PHONE_DISPLAY,
    COORDINATOR,
    FIRST,
    FROM,
    NEXT_DAY,
    PATIENTS,
    SECOND,
    Patient,
    Plan,
    RunningService,
    sms_only_patients,
    wait_for,
    write_config,
)

DANA, LUIS, AROHA = PATIENTS
#: Every reminder status the contract names (SPEC section 5).
STATUSES = (
    "planned",
    "sending",
    "sent",
    "delivered",
    "failed",
    "cancelled",
    "expired",
    "suppressed",
)
#: A patient's free-text reply (fictional), which must reach the coordinator and no log.
REPLY = "The stitches near my sit bone itch a lot tonight, is that expected?"


@pytest.fixture
def service(tmp_path: Path, twilio: FakeTwilio, smtp: SmtpRecorder) -> Iterator[RunningService]:
    """A ``run`` process for ``tmp_path/clinic`` (started by the test); always stopped afterwards."""
    running = RunningService(tmp_path / "clinic", twilio, smtp)
    yield running
    running.close()


def start(
    service: RunningService,
    patients: tuple[Patient, ...] | list[Patient] = PATIENTS,
    *,
    first_in: float = -60,
    second_in: float | None = None,
) -> Plan:
    """Write the configuration, start ``run`` and wait for /healthz."""
    plan = write_config(service.folder, patients, first_in=first_in, second_in=second_in)
    service.start()
    service.wait_healthy()
    return plan


def patient_mail(smtp: SmtpRecorder, patient: Patient) -> list[EmailMessage]:
    """The emails the SMTP server accepted for ``patient``."""
    with smtp.lock:
        return [m for m in smtp.messages if m["To"] == patient.email]


def coordinator_mail(smtp: SmtpRecorder) -> list[EmailMessage]:
    """The emails the SMTP server accepted for the clinic's coordinator."""
    with smtp.lock:
        return [m for m in smtp.messages if m["To"] == COORDINATOR]


def texts_to(twilio: FakeTwilio, patient: Patient) -> list[FakeMessage]:
    """The SMS the endpoint accepted for ``patient``."""
    return [m for m in twilio.messages if m.to == patient.phone]


def first_messages_out(
    twilio: FakeTwilio, smtp: SmtpRecorder, patients: tuple[Patient, ...] = PATIENTS
) -> None:
    """Wait until every patient got the first message on both channels."""
    wait_for(
        "the first SMS and email of every patient",
        lambda: all(texts_to(twilio, p) and patient_mail(smtp, p) for p in patients),
        timeout=20,
    )


def text_of(mail: EmailMessage) -> str:
    """The plain-text part of an email."""
    part = mail.get_body(("plain",))
    assert part is not None, "the email has no text/plain part"
    return str(part.get_content())


def status_path(message: FakeMessage) -> str:
    """Path and query of the status callback URL the service gave Twilio for ``message``."""
    assert message.status_callback, "the service sent no StatusCallback"
    url = urlsplit(message.status_callback)
    return f"{url.path}?{url.query}"


def row(service: RunningService, patient: Patient, milestone: str, channel: str) -> dict[str, Any]:
    """One timeline row of ``patient``."""
    [found] = [
        r
        for r in service.timeline(patient.id)
        if (r["milestone"], r["channel"]) == (milestone, channel)
    ]
    return found


def metrics(service: RunningService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics parsed: (sample name, sorted labels) -> value."""
    response = service.http.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def unsubscribe_path(mail: EmailMessage, service: RunningService) -> str:
    """The one-click unsubscribe path of an email's ``List-Unsubscribe`` header."""
    header = str(mail["List-Unsubscribe"])
    match = re.fullmatch(r"<([^>]+)>", header.strip())
    assert match, f"unexpected List-Unsubscribe {header!r}"
    assert match.group(1).startswith(service.public_url + "/unsubscribe/"), header
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return urlsplit(match.group(1)).path


def inbound(patient: Patient, body: str, n: int) -> dict[str, str]:
    """An inbound-SMS webhook form from ``patient``."""
    assert patient.phone
    return inbound_form(patient.phone, body, f"SM{n:032x}", to=FROM)


# -- 1. the clock -----------------------------------------------------------------------------


def test_reminders_go_out_as_the_clock_passes_their_due_time(
    service: RunningService, twilio: FakeTwilio, smtp: SmtpRecorder
) -> None:
    """A milestone due 8 s after start reaches each patient once per channel, after its due time and not before."""
    plan = start(service, first_in=8)
    due = plan.first_due
    assert datetime.now(UTC) < due - timedelta(seconds=2), "the service took too long to start"
    arrived: dict[str, datetime] = {}
    deadline = due + timedelta(seconds=20)
    while len(arrived) < 2 * len(PATIENTS):
        now = datetime.now(UTC)
        assert now < deadline, f"only {sorted(arrived)} arrived by {deadline}"
        seen = [f"sms {m.to}" for m in twilio.messages] + [
            f"email {m['To']}" for m in list(smtp.messages)
        ]
        for key in seen:
            arrived.setdefault(key, now)
        assert now >= due or not seen, f"{seen} arrived at {now}, before the due time {due}"
        time.sleep(0.05)
    time.sleep(1.5)  # anything sent twice would show up by now

    texts, mails = twilio.messages, list(smtp.messages)
    assert Counter(m.to for m in texts) == Counter(p.phone for p in PATIENTS)
    assert Counter(m["To"] for m in mails) == Counter(p.email for p in PATIENTS)
    for m in texts:
        assert m.date_created >= due, f"accepted at {m.date_created}, due {due}"
        assert m.from_ == FROM
        [p] = [p for p in PATIENTS if p.phone == m.to]
        assert m.body.startswith(f"ERC: Hi {p.first_name}."), m.body
    # Woken at the due time, not by the 15 s safety poll.
    assert max(arrived.values()) - due < timedelta(seconds=5), arrived
    for p in PATIENTS:
        rows = {(r["milestone"], r["channel"]): r for r in service.timeline(p.id)}
        for channel in ("sms", "email"):
            sent = rows[FIRST, channel]
            assert sent["status"] == "sent"
            assert sent["attempts"] == 1
            assert datetime.fromisoformat(sent["sent_at"]) >= due
            assert rows[NEXT_DAY, channel]["status"] == "planned"


# -- 2. replies -----------------------------------------------------------------------------


def test_signed_stop_suppresses_pending_sms_and_start_resumes_future_ones(
    service: RunningService, twilio: FakeTwilio, smtp: SmtpRecorder
) -> None:
    """After a signed STOP a patient's pending SMS are suppressed and the next one is not sent; START plans future ones again."""
    # The second message must still be pending after start-up and the first sends, even on a
    # loaded machine: 25 s leaves room, and the test waits for it anyway.
    plan = start(service, second_in=25)
    assert plan.second_due is not None
    first_messages_out(twilio, smtp)

    stop = service.twilio_post("/twilio/inbound", inbound(DANA, "STOP", 1))
    assert stop.status_code == 200
    assert stop.headers["content-type"].startswith("application/xml")
    assert "<Response" in stop.text
    dana = service.statuses(DANA.id)
    assert dana[SECOND, "sms"] == dana[NEXT_DAY, "sms"] == "suppressed"
    assert dana[SECOND, "email"] == dana[NEXT_DAY, "email"] == "planned"
    assert dana[FIRST, "sms"] == "sent"
    assert service.statuses(LUIS.id)[NEXT_DAY, "sms"] == "planned"

    # The second message goes out to everyone else, and by email to Dana, but not by SMS to her.
    wait_for(
        "the second message",
        lambda: (
            len(texts_to(twilio, LUIS)) >= 2
            and len(texts_to(twilio, AROHA)) >= 2
            and len(patient_mail(smtp, DANA)) >= 2
        ),
        timeout=25,
    )
    time.sleep(1)
    assert [m.to for m in texts_to(twilio, DANA)] == [DANA.phone]
    assert {p.id: len(texts_to(twilio, p)) for p in PATIENTS} == {
        DANA.id: 1,
        LUIS.id: 2,
        AROHA.id: 2,
    }

    again = service.twilio_post("/twilio/inbound", inbound(DANA, "start", 2))
    assert again.status_code == 200
    dana = service.statuses(DANA.id)
    assert dana[NEXT_DAY, "sms"] == "planned"
    assert dana[NEXT_DAY, "email"] == "planned"


def test_help_answers_with_the_clinic_and_free_text_is_forwarded_to_the_coordinator(
    service: RunningService, twilio: FakeTwilio, smtp: SmtpRecorder
) -> None:
    """HELP is answered by SMS (through the outbox, at once) naming the clinic and its phone; a free-text reply reaches the coordinator by email, the patient hears once that the number is not watched, and no reminder changes."""
    start(service)
    first_messages_out(twilio, smtp)
    before = reminders_of(service.timeline(LUIS.id))
    sent_before = len(texts_to(twilio, LUIS))

    help_ = service.twilio_post("/twilio/inbound", inbound(LUIS, "help", 1))
    assert help_.status_code == 200
    assert help_.headers["content-type"].startswith("application/xml")
    assert "<Message>" not in help_.text  # every reply leaves through the outbox
    [answer] = wait_for(
        "the HELP answer",
        lambda: (
            [m for m in texts_to(twilio, LUIS)[sent_before:] if "recovery reminders" in m.body]
            or None
        ),
        timeout=10,
    )
    assert CLINIC_NAME in answer.body
    assert CLINIC_PHONE_DISPLAY in answer.body

    reply = service.twilio_post("/twilio/inbound", inbound(LUIS, REPLY, 2))
    assert reply.status_code == 200
    assert "<Message>" not in reply.text
    [forwarded] = wait_for("the forwarded reply", lambda: coordinator_mail(smtp), timeout=10)
    assert REPLY in text_of(forwarded)
    assert LUIS.id in str(forwarded["Subject"]) + text_of(forwarded)
    wait_for(
        "the not-watched answer",
        lambda: [m for m in texts_to(twilio, LUIS) if "not watched" in m.body] or None,
        timeout=10,
    )
    assert reminders_of(service.timeline(LUIS.id)) == before


def reminders_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The planned reminders of a timeline (not the responses to a patient's texts)."""
    return [r for r in rows if r["kind"] == "reminder"]


# -- 3. signatures --------------------------------------------------------------------------


def test_forged_or_missing_signature_gets_403_and_changes_nothing(
    service: RunningService, twilio: FakeTwilio, smtp: SmtpRecorder
) -> None:
    """STOP, free text and status callbacks with a forged, tampered, malformed or missing signature get 403 and change nothing."""
    start(service)
    first_messages_out(twilio, smtp)
    [text] = texts_to(twilio, DANA)
    before = (service.timeline(DANA.id), service.cli("status", "--json").json())
    stop = inbound(DANA, "STOP", 1)
    reply = inbound(DANA, REPLY, 2)
    failed = status_form(text.sid, "failed", to=DANA.phone or "", code="30003")
    forged = "dGhpcyBpcyBub3QgYSBzaWduYXR1cmU="
    tampered = service.signature("/twilio/inbound", inbound(DANA, "HELLO", 1))
    attempts = [
        ("/twilio/inbound", stop, forged),
        ("/twilio/inbound", stop, tampered),  # signed for another body
        ("/twilio/inbound", stop, None),
        ("/twilio/inbound", reply, None),
        ("/twilio/inbound", reply, "not base64!"),
        (status_path(text), failed, forged),
        (status_path(text), failed, None),
        # Signed for another reminder's callback URL.
        (status_path(text), failed, service.signature("/twilio/status?reminder=999", failed)),
    ]
    for path, form, signature in attempts:
        response = service.twilio_post(path, form, signature)
        assert response.status_code == 403, f"{path} {signature!r}: {response.status_code}"

    time.sleep(1)  # a forwarded reply would be on its way by now
    assert (service.timeline(DANA.id), service.cli("status", "--json").json()) == before
    assert coordinator_mail(smtp) == []
    # The same STOP, correctly signed, is accepted: only the signature was wrong.
    assert service.twilio_post("/twilio/inbound", stop).status_code == 200
    assert service.statuses(DANA.id)[NEXT_DAY, "sms"] == "suppressed"


# -- 4. status callbacks ------------------------------------------------------------------------


def test_duplicate_and_out_of_order_status_callbacks_end_in_the_right_state(
    service: RunningService, twilio: FakeTwilio, smtp: SmtpRecorder
) -> None:
    """Two `delivered` then a late `sent` leave a reminder delivered; `failed` 30003 on another marks it failed with the code."""
    start(service)
    first_messages_out(twilio, smtp)
    [to_dana] = texts_to(twilio, DANA)
    [to_luis] = texts_to(twilio, LUIS)

    for status in ("delivered", "delivered", "sent"):
        form = status_form(to_dana.sid, status, to=DANA.phone or "")
        response = service.twilio_post(status_path(to_dana), form)
        assert response.status_code == 204, response.text
    # A callback about some other message for this reminder is not taken as its status.
    other = status_form("SM" + "0" * 32, "failed", to=DANA.phone or "", code="30005")
    assert service.twilio_post(status_path(to_dana), other).status_code == 204
    failed = status_form(to_luis.sid, "failed", to=LUIS.phone or "", code="30003")
    assert service.twilio_post(status_path(to_luis), failed).status_code == 204

    dana = row(service, DANA, FIRST, "sms")
    assert (dana["status"], dana["provider_id"], dana["error_code"]) == (
        "delivered",
        to_dana.sid,
        None,
    )
    luis = row(service, LUIS, FIRST, "sms")
    assert (luis["status"], luis["provider_id"], luis["error_code"]) == (
        "failed",
        to_luis.sid,
        "30003",
    )
    assert row(service, AROHA, FIRST, "sms")["status"] == "sent"
    assert row(service, LUIS, FIRST, "email")["status"] == "sent"
    scraped = metrics(service)
    assert scraped["reminders_provider_errors_total", (("channel", "sms"), ("code", "30003"))] == 1


# -- 5. one-click unsubscribe ---------------------------------------------------------------


def test_one_click_unsubscribe_stops_email_and_get_only_shows_a_page(
    service: RunningService, twilio: FakeTwilio, smtp: SmtpRecorder
) -> None:
    """POST to the List-Unsubscribe link suppresses that patient's pending email (the next one never arrives); GET only shows a page; a tampered token gets 404."""
    # The second message must still be pending after start-up and the first sends, even on a
    # loaded machine: 25 s leaves room, and the test waits for it anyway.
    plan = start(service, second_in=25)
    assert plan.second_due is not None
    first_messages_out(twilio, smtp)
    [to_dana] = patient_mail(smtp, DANA)
    [to_luis] = patient_mail(smtp, LUIS)
    path = unsubscribe_path(to_dana, service)
    assert path != unsubscribe_path(to_luis, service)

    page = service.http.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in page.text
    assert service.statuses(DANA.id)[SECOND, "email"] == "planned"

    reminder, signature = path.rsplit("/", 1)[1].split(".")
    luis_reminder, _ = unsubscribe_path(to_luis, service).rsplit("/", 1)[1].split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (
        f"/unsubscribe/{reminder}.{flipped}",
        f"/unsubscribe/{luis_reminder}.{signature}",  # Dana's signature on Luis's reminder
    ):
        assert service.http.get(forged).status_code == 404
        response = service.http.post(forged, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 404
    assert service.statuses(LUIS.id)[SECOND, "email"] == "planned"

    done = service.http.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    dana = service.statuses(DANA.id)
    assert dana[SECOND, "email"] == dana[NEXT_DAY, "email"] == "suppressed"
    assert dana[SECOND, "sms"] == dana[NEXT_DAY, "sms"] == "planned"
    assert dana[FIRST, "email"] == "sent"
    assert service.statuses(LUIS.id)[SECOND, "email"] == "planned"

    wait_for(
        "the second message",
        lambda: (
            len(texts_to(twilio, DANA)) >= 2
            and len(patient_mail(smtp, LUIS)) >= 2
            and len(patient_mail(smtp, AROHA)) >= 2
        ),
        timeout=25,
    )
    time.sleep(1)
    assert patient_mail(smtp, DANA) == [to_dana]
    assert [len(patient_mail(smtp, p)) for p in (LUIS, AROHA)] == [2, 2]


# -- 6. metrics --------------------------------------------------------------------------------


def test_metrics_expose_sends_statuses_backlog_and_lag_without_patient_identifiers(
    service: RunningService, twilio: FakeTwilio, smtp: SmtpRecorder
) -> None:
    """/readyz is ready, and /metrics counts sends by channel and outcome, reminders by status, backlog and lag, and names no patient."""
    start(service)
    first_messages_out(twilio, smtp)
    ready = service.http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"database": "ok", "scheduler": "running"})
    wait_for("the tick's log line", lambda: '"event": "tick"' in service.stderr(), timeout=10)

    response = service.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    scraped = metrics(service)
    assert scraped["reminders_sends_total", (("channel", "sms"), ("outcome", "sent"))] == 3
    assert scraped["reminders_sends_total", (("channel", "email"), ("outcome", "sent"))] == 3
    by_status = {
        dict(labels)["status"]: value
        for (name, labels), value in scraped.items()
        if name == "reminders_reminders"
    }
    assert set(by_status) >= set(STATUSES)
    assert by_status["sent"] == 6
    assert by_status["planned"] == 6  # the next-day SMS and email of each patient
    assert scraped["reminders_backlog", ()] == 0
    assert scraped["reminders_dispatch_lag_seconds", ()] == 0
    for patient in PATIENTS:
        for identifier in [patient.id, *patient.identifiers()]:
            assert identifier not in response.text, f"{identifier!r} appears in /metrics"


# -- 7. graceful stop ---------------------------------------------------------------------------

#: Patients of the batch test: their SMS are all due at once.
BATCH = 400


def test_sigterm_mid_batch_exits_0_and_the_next_start_sends_nothing_twice(
    service: RunningService, twilio: FakeTwilio
) -> None:
    """SIGTERM while 400 due SMS go out (50 ms each) exits 0 within 30 s with every send recorded; the next run sends only the rest, each once."""
    patients = sms_only_patients(BATCH)
    twilio.latency = 0.05
    write_config(service.folder, patients, first_in=-60)
    service.start()
    wait_for("the batch to start", lambda: len(twilio.messages) >= 40, timeout=30)
    code, took = service.stop(timeout=30)
    assert code == 0, service.output()
    assert took < 30
    accepted = len(twilio.messages)
    assert accepted < BATCH, "the batch finished before SIGTERM: nothing was interrupted"
    log = service.stderr()
    assert '"event": "service.stopping"' in log
    assert '"exit_code": 0' in log
    summary = service.cli("status", "--json").json()["reminders"]
    # In-flight sends finished and were recorded; no lease or attempt was left in doubt.
    assert summary.get("sent", 0) == accepted, summary
    assert summary.get("sending", 0) == 0, summary
    assert summary.get("planned", 0) == 2 * BATCH - accepted, summary

    service.start()
    wait_for("the rest of the batch", lambda: len(twilio.messages) >= BATCH, timeout=60)
    time.sleep(1.5)
    per_number = Counter(m.to for m in twilio.messages)
    assert [n for n, c in per_number.items() if c > 1] == []
    assert set(per_number) == {p.phone for p in patients}
    assert len(twilio.messages) == BATCH
    code, _ = service.stop(timeout=30)
    assert code == 0, service.output()
    summary = service.cli("status", "--json").json()["reminders"]
    assert summary.get("sent", 0) == BATCH, summary
    assert summary.get("sending", 0) == 0, summary


# -- 8. logs ------------------------------------------------------------------------------------


def test_logs_of_a_full_run_hold_no_phone_number_email_address_or_message_body(
    service: RunningService, twilio: FakeTwilio, smtp: SmtpRecorder
) -> None:
    """The output of a run with sends, provider rejections, replies, STOP/START, callbacks and an unsubscribe has no contact detail or message text."""
    # Aroha's number is unsubscribed at Twilio (21610) and her mailbox bounces with a
    # reply that quotes her address, so error paths are logged too.
    assert AROHA.phone
    assert AROHA.email
    twilio.unsubscribe(AROHA.phone)
    smtp.fail_rcpt(AROHA.email, f"550 5.1.1 <{AROHA.email}>: Recipient address rejected")
    start(service)
    first_messages_out(twilio, smtp, (DANA, LUIS))
    wait_for("the tick's log line", lambda: '"event": "tick"' in service.stderr(), timeout=10)
    assert service.twilio_post("/twilio/inbound", inbound(LUIS, REPLY, 1)).status_code == 200
    assert service.twilio_post("/twilio/inbound", inbound(LUIS, "HELP", 2)).status_code == 200
    assert service.twilio_post("/twilio/inbound", inbound(DANA, "STOP", 3)).status_code == 200
    assert service.twilio_post("/twilio/inbound", inbound(DANA, "START", 4)).status_code == 200
    assert service.twilio_post("/twilio/inbound", inbound(AROHA, REPLY, 5), None).status_code == 403
    text = texts_to(twilio, LUIS)[0]  # the first reminder (replies to his texts follow)
    for status, code in (("delivered", None), ("failed", "30003")):
        form = status_form(text.sid, status, to=LUIS.phone or "", code=code)
        assert service.twilio_post(status_path(text), form).status_code == 204
    [mail] = patient_mail(smtp, DANA)
    path = unsubscribe_path(mail, service)
    assert service.http.get(path).status_code == 200
    assert service.http.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    wait_for("the forwarded reply", lambda: coordinator_mail(smtp), timeout=10)
    code, _ = service.stop()
    assert code == 0
    aroha = service.statuses(AROHA.id)
    assert aroha[FIRST, "sms"] == aroha[FIRST, "email"] == "failed"

    output = service.output()
    log = service.stderr()
    lines = [line for line in log.splitlines() if line.strip()]
    events = [json.loads(line)["event"] for line in lines]  # every line is a JSON object
    for event in ("reminder.sent", "sms.inbound", "sms.status"):
        assert event in events, f"no {event} in the log: the run did not log what it did"
    # The forwarded reply and the answers to Luis's texts left through the outbox.
    kinds = {json.loads(line).get("kind") for line in lines if '"reminder.sent"' in line}
    assert {"notice", "response"} <= kinds
    assert "email.unsubscribed" in events

    for patient in PATIENTS:
        for identifier in patient.identifiers():
            assert identifier not in output, f"{identifier!r} appears in the output"
    bodies = [m.body for m in twilio.messages] + [text_of(m) for m in list(smtp.messages)]
    sentences = {
        s.strip()
        for body in bodies
        for s in re.split(r"(?<=[.?!:])\s+|\n+", body)
        if len(s.strip()) >= 25
    }
    sentences |= {str(m["Subject"]) for m in list(smtp.messages)}
    sentences.add(REPLY)
    assert len(sentences) > 10
    leaked = sorted(s for s in sentences if s in output)
    assert leaked == [], f"message text in the output: {leaked}"
    token = path.rsplit("/", 1)[1]
    assert token not in output, "an unsubscribe token was logged"
