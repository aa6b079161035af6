"""Property: no request spliced from a genuine Twilio webhook, its signature still valid, changes what we act on.

Twilio signs the URL followed by every name and value, sorted by name, run together.
From a genuine webhook (an inbound STOP, START, HELP or reply; a status callback for
one of the texts the real Twilio client sent), hypothesis builds another request with
the *same signed string* by moving characters across boundaries: between the URL's
query and the first name (``?reminder=57`` + ``AccountSid`` as ``?reminder=5`` +
``7AccountSid``), between a name and its value (``MessageSid=SM…`` as
``MessageSi=dSM…``), between a value and the next name; or by repeating a name with
another value in front of the genuine one (a server reading the last one sees the
genuine values). Only requests whose signature Twilio's own ``RequestValidator`` still
accepts are sent, to the real app over loopback, on SQLite and PostgreSQL.

The oracle, for each example, in one of two orders:

- *replayed*: the genuine request is handled first (and, for STOP or START, the
  opposite keyword after it, as a patient would), then the splice. The splice must
  change nothing in the store: not a row of any table.
- *first*: the splice arrives before the genuine request. If it changes anything we
  act on (path, query, account, sender, text, MessageSid; or status, code and number
  of a callback), or repeats a name, it must be refused (4xx) with nothing changed.

Either way the genuine request is then accepted, and has done its work: the text is
stored under its MessageSid, the callback left nothing more for itself to do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from reminders import lifecycle
from tests.integration.webhook_desk import (
    AUTH_TOKEN,
    PHONE,
    PUBLIC_URL,
    Desk,
    callback_target,
    desk,
)
from tests.twilio_webhooks import inbound_form, message_sid, status_form

__all__ = ["desk"]  # the fixture, imported for pytest

#: Bodies a patient sends: keywords, and replies that contain parameter names.
BODIES = (
    "STOP",
    "START",
    "HELP",
    "yes",
    "Thanks, see you Tuesday",
    "FromCity",
    "STOPFrom+12015550123",
    "MessageSidSM" + "0" * 32,
    "",
)
STATUSES = ("queued", "sent", "delivered", "undelivered", "failed")
#: Fields the app acts on, per endpoint (besides the path and the query string).
ACTED = {
    "/twilio/inbound": ("AccountSid", "From", "Body", "MessageSid"),
    "/twilio/status": ("AccountSid", "MessageSid", "MessageStatus", "ErrorCode", "To"),
}


@dataclass(frozen=True)
class Request:
    """One POST: path and query, and the form's (name, value) pairs in the order sent."""

    target: str
    pairs: tuple[tuple[str, str], ...]

    @property
    def form(self) -> dict[str, str]:
        """The form as a server that keeps the last of repeated names reads it."""
        return dict(self.pairs)

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def signed_string(self) -> str:
        """What Twilio signs: the URL, then each name and value in name order."""
        form = self.form
        return PUBLIC_URL + self.target + "".join(k + form[k] for k in sorted(form))

    def acted(self) -> tuple[object, ...]:
        """What the app would act on: path, query, and the acted-on fields (repeats: never equal)."""
        form = self.form
        repeats = len(form) != len(self.pairs)
        fields = ACTED.get(self.path, ())
        return (self.target, repeats, *(form.get(name) for name in fields))


def tokens(request: Request) -> list[str]:
    """The signed string's pieces: the path and query, then each name and value in order."""
    form = request.form
    return [request.target, *(piece for k in sorted(form) for piece in (k, form[k]))]


def from_tokens(pieces: list[str]) -> Request:
    """The request whose pieces are ``pieces`` (path and query, name, value, ...)."""
    names, values = pieces[1::2], pieces[2::2]
    return Request("/" + pieces[0].lstrip("/"), tuple(zip(names, values, strict=True)))


@st.composite
def moved(draw: st.DrawFn, genuine: Request) -> Request:
    """``genuine`` with characters moved across one to three boundaries of its signed string."""
    pieces = tokens(genuine)
    for _ in range(draw(st.integers(1, 3), label="moves")):
        boundary = draw(st.integers(0, len(pieces) - 2), label="boundary")
        left, right = pieces[boundary], pieces[boundary + 1]
        ways = [st.integers(-min(len(left), 40), -1)] if left else []
        ways += [st.integers(1, min(len(right), 40))] if right else []
        if not ways:
            continue
        shift = draw(st.one_of(ways), label="shift")
        if shift < 0:
            left, right = left[:shift], left[shift:] + right
        else:
            left, right = left + right[:shift], right[shift:]
        if boundary == 0 and not left.replace("/", "").replace("?", "").replace("=", "").isalnum():
            continue  # only letters and digits cross into the URL, so it is sent as signed
        pieces[boundary], pieces[boundary + 1] = left, right
    return from_tokens(pieces)


@st.composite
def repeated(draw: st.DrawFn, genuine: Request) -> Request:
    """``genuine`` with a name sent twice: another value first, the genuine one last."""
    name, _ = draw(st.sampled_from(genuine.pairs), label="repeated name")
    other = draw(st.sampled_from(["", "STOP", "START", message_sid("other"), "+12015550191"]))
    index = next(i for i, (k, _) in enumerate(genuine.pairs) if k == name)
    return Request(genuine.target, (*genuine.pairs[:index], (name, other), *genuine.pairs[index:]))


@st.composite
def inbound(draw: st.DrawFn) -> Request:
    """A genuine inbound text from a patient, with a MessageSid never seen before."""
    patient = draw(st.sampled_from(sorted(PHONE)), label="patient")
    body = draw(st.sampled_from(BODIES), label="body")
    form = inbound_form(PHONE[patient], body, message_sid(uuid.uuid4()))
    if draw(st.booleans(), label="via a messaging service"):
        form["MessagingServiceSid"] = "MG" + "5a" * 16
    if draw(st.booleans(), label="with a photo"):
        form.update(
            NumMedia="1",
            MediaContentType0="image/jpeg",
            MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1",
        )
    return Request("/twilio/inbound", tuple(form.items()))


@st.composite
def callbacks(draw: st.DrawFn, desk: Desk) -> Request:
    """A genuine status callback for one of the texts the service sent, at its own URL."""
    text = draw(st.sampled_from(desk.fake.messages), label="text")
    status = draw(st.sampled_from(STATUSES), label="status")
    code = "30003" if status in ("undelivered", "failed") else None
    form = status_form(text.sid, status, to=text.to, code=code)
    return Request(callback_target(text), tuple(form.items()))


def post(desk: Desk, request: Request, signed: str) -> int:
    """POST ``request`` (pairs in order) with ``signed``; the status code."""
    return desk.post(request.target, list(request.pairs), signed).status_code


def counter(genuine: Request) -> Request | None:
    """The opposite keyword from the same patient, with a new MessageSid, or None."""
    form = genuine.form
    opposite = {"STOP": "START", "START": "STOP"}.get(form.get("Body", ""))
    if opposite is None:
        return None
    again = {**form, "Body": opposite}
    sid = message_sid(uuid.uuid4())
    again.update(MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
    return Request(genuine.target, tuple(again.items()))


def work_done(desk: Desk, genuine: Request) -> None:
    """Assert that the genuine request's effect is in the store."""
    form = genuine.form
    if genuine.path == "/twilio/inbound":
        with desk.store.read() as tx:
            stored = tx.conn.execute(
                sa.text("SELECT body FROM inbound_messages WHERE provider_id = :sid"),
                {"sid": form["MessageSid"]},
            ).scalar_one_or_none()
        assert stored == form["Body"]
        return
    reminder = desk.reminder(int(genuine.target.rpartition("=")[2]))
    assert reminder.provider_id == form["MessageSid"]
    assert lifecycle.callback_status(reminder.status, form["MessageStatus"]) is None


@given(data=st.data())
@settings(
    max_examples=150,
    deadline=None,
    # One served app and outbox for every example: each example's oracle compares
    # snapshots taken around its own requests, and every inbound text has a new SID.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_no_splice_of_a_signed_webhook_changes_what_we_act_on(
    desk: Desk, data: st.DataObject
) -> None:
    """A request spliced from a genuine signed webhook, its signature still valid, never changes the store unless it asks for exactly what the genuine one asks; the genuine one still works."""
    genuine = data.draw(inbound() | callbacks(desk), label="genuine")
    signed = str(
        RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + genuine.target, genuine.form)
    )
    splice = data.draw(moved(genuine) | repeated(genuine), label="splice")
    assume(splice != genuine)
    assume(splice.signed_string() == genuine.signed_string())
    assert RequestValidator(AUTH_TOKEN).validate(PUBLIC_URL + splice.target, splice.form, signed)
    harmless = splice.acted() == genuine.acted()
    replayed = data.draw(st.booleans(), label="genuine first")
    event("replayed" if replayed else "splice first")
    event(f"splice {'only moves what we never act on' if harmless else 'changes what we act on'}")

    if replayed:
        assert post(desk, genuine, signed) in (200, 204)
        opposite = counter(genuine)
        if opposite is not None:
            assert desk.twilio_post(opposite.target, opposite.form).status_code == 200
    before = desk.snapshot()
    status = post(desk, splice, signed)
    event(f"splice answered {status}")
    assert status < 500
    if replayed:
        assert desk.snapshot() == before, f"a replayed splice changed the store: {splice}"
    elif not harmless:
        assert 400 <= status < 500, f"a splice that changes what we act on got {status}: {splice}"
        assert desk.snapshot() == before, f"a refused splice changed the store: {splice}"
    if not replayed:
        assert post(desk, genuine, signed) in (200, 204), f"the genuine request failed: {genuine}"
    work_done(desk, genuine)
