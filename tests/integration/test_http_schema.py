"""The HTTP API, fuzzed against its own OpenAPI schema (schemathesis): it never answers 5xx.

The app is the real one (:func:`reminders.http.create_app`) over a SQLite outbox with a
few enrolled patients whose day-1 reminders went out through the in-memory channel, so
status callbacks and opt-outs find real rows. Unsigned webhooks stop at the signature
check, so every generated Twilio webhook is also sent a second time, signed the way
Twilio signs it, to fuzz what lies behind the check; and a second property test sends
signed webhooks whose fields look like Twilio's (known numbers, keywords, reminder ids
and message SIDs mixed with arbitrary values), which random form keys almost never reach.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from reminders.channels.memory import MemoryChannel
from reminders.http import WebContext, create_app
from reminders.metrics import Metrics
from reminders.models import Schedules
from reminders.store import Store
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher
from tests.integration.test_dispatch import DAY1, ENROLLED
from tests.integration.test_sync import patient, write
from tests.twilio_webhooks import ACCOUNT_SID, SidChannel, inbound_form, message_sid, status_form

PUBLIC_URL = "https://reminders.example.com"
AUTH_TOKEN = "schema-test-auth-token"
SECRET = "schema-test-secret-key"
PHONES = ("+12015550123", "+19735550142", "+12015550191")
#: The same numbers as a patient's phone might send them, in national format.
NATIONAL = ("(201) 555-0123", "973-555-0142", "2015550191")
#: Inbound bodies Twilio passes on: keywords in several spellings, and free text.
KEYWORDS = ("STOP", "stop", " Stop. ", "START", "unstop", "HELP", "info!", "Thanks, see you")
#: Every MessageStatus Twilio documents for outbound messages.
TWILIO_STATUSES = (
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "undelivered",
    "failed",
    "canceled",
)
ERROR_CODES = ("30003", "30005", "30006", "21610")
#: Reminder ids at the edges of what a query integer and a database integer can hold.
EDGE_IDS = (0, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30)
#: Fuzzing budget per operation: enough to cover the coverage phase and some random cases.
EXAMPLES = 40

#: The app's context. schemathesis 4.32's fixture-based loader breaks on pytest 9 (it sets
#: ``request.node._nodeid``), so the schema is loaded at import and :func:`outbox` fills
#: the context in before any request is made.
CONTEXT = WebContext(
    store=cast(Store, None),
    twilio_auth_token=AUTH_TOKEN,
    public_url=PUBLIC_URL,
    secret_key=SECRET,
    schedules=lambda: pytest.fail("no schedules: the outbox fixture did not run"),
    metrics=cast(Metrics, None),
    running=lambda: True,
    clock=lambda: DAY1,
    twilio_account_sid=ACCOUNT_SID,
)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(CONTEXT, openapi=True))


@dataclass(frozen=True)
class Sent:
    """What the outbox holds that a webhook can refer to."""

    #: Reminder ids of every sent reminder (SMS and email).
    reminder_ids: list[int]
    #: Provider ids (message SIDs) of the sent SMS.
    sids: list[str]


@pytest.fixture(scope="module", autouse=True)
def outbox(
    tmp_path_factory: pytest.TempPathFactory, shipped: Schedules, templates: Templates
) -> Iterator[Sent]:
    """Three patients whose day-1 reminders went out, behind the app."""
    folder: Path = tmp_path_factory.mktemp("schema")
    store = Store(f"sqlite:///{folder / 'r.db'}")
    records = [patient(f"P-{n}", phone=phone) for n, phone in enumerate(PHONES, start=1)]
    sync_patients(store, shipped, write(folder / "patients.yaml", *records), ENROLLED)
    channels = {"sms": SidChannel("sms"), "email": MemoryChannel("email")}
    report = make_dispatcher(
        store, shipped, templates, channels, owner="test", rng=random.Random(1)
    ).tick(DAY1)
    assert report.counts["sent"] == 2 * len(PHONES)
    with store.read() as tx:
        sent = [e for e in tx.views.timeline() if e.status == "sent"]
    CONTEXT.store = store
    CONTEXT.metrics = Metrics(store, lambda: DAY1)
    CONTEXT.schedules = lambda: shipped
    yield Sent(
        reminder_ids=[e.id for e in sent],
        sids=[e.provider_id for e in sent if e.channel == "sms" and e.provider_id],
    )
    store.close()


def twilio_signature(sent: requests.PreparedRequest) -> dict[str, str]:
    """The ``X-Twilio-Signature`` Twilio would send with the request ``sent`` (URL, query, form)."""
    url = urlsplit(str(sent.url))
    signed_url = PUBLIC_URL + url.path + (f"?{url.query}" if url.query else "")
    raw = sent.body.decode() if isinstance(sent.body, bytes) else str(sent.body or "")
    form = dict(parse_qsl(raw, keep_blank_values=True))
    return {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(signed_url, form)}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # The module-scoped app (and its outbox) is meant to persist across examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_no_request_the_schema_allows_gets_a_server_error(case: Any) -> None:
    """Any request the schema allows, and every Twilio webhook also correctly signed, is answered below 500."""
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    if not (case.path.startswith("/twilio/") and case.method.upper() == "POST"):
        return
    # Generated signatures are forgeries; a query FastAPI cannot read is refused first.
    assert response.status_code in (403, 422), f"an unsigned webhook got {response.status_code}"
    signed = case.call(headers=twilio_signature(response.request))
    assert signed.status_code < 500, (
        f"signed {case.method} {case.formatted_path} {case.query} {case.body}: {signed.text}"
    )
    assert signed.status_code != 403, f"a correctly signed webhook was refused: {case.body}"


def signed_post(path: str, query: dict[str, Any], form: dict[str, str]) -> Any:
    """POST ``form`` to ``path`` through schemathesis's ASGI transport, signed like Twilio."""
    url = PUBLIC_URL + path + (f"?{urlencode(query)}" if query else "")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    case = schema[path]["POST"].Case(
        query=query,
        body=form,
        headers={"X-Twilio-Signature": signature},
        media_type="application/x-www-form-urlencoded",
    )
    return case.call()


#: Text as Twilio may pass it on (no NUL: form fields with one are not what Twilio sends).
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=30)


@given(data=st.data())
@settings(max_examples=EXAMPLES, deadline=None)
def test_signed_status_callbacks_never_get_a_server_error(
    outbox: Sent, data: st.DataObject
) -> None:
    """A signed status callback for any reminder id, SID, status, error code and number is answered below 500 (204 when every field is Twilio's)."""
    ids = st.sampled_from(outbox.reminder_ids) | st.sampled_from(EDGE_IDS) | st.integers()
    reminder = data.draw(ids, label="reminder")
    twilio_like = True

    def field(samples: st.SearchStrategy[str], label: str) -> str:
        """Twilio's kind of value, or (then the callback is not Twilio's) any text."""
        nonlocal twilio_like
        if data.draw(st.booleans(), label=f"{label} is Twilio's"):
            return data.draw(samples, label=label)
        twilio_like = False
        return data.draw(TEXT, label=label)

    sid = field(st.sampled_from(outbox.sids), "sid")
    status = field(st.sampled_from(TWILIO_STATUSES), "status")
    to = field(st.sampled_from(PHONES), "to")
    code = data.draw(st.none() | st.sampled_from(ERROR_CODES), label="code")
    form = status_form(sid, status, to=to, code=code)
    response = signed_post("/twilio/status", {"reminder": reminder}, form)
    assert response.status_code < 500, f"{reminder} {form}: {response.text}"
    if not 1 <= reminder < 2**63:
        assert response.status_code == 422, f"{reminder} {form}: {response.text}"  # not a row id
    elif twilio_like:
        assert response.status_code == 204, f"{reminder} {form}: {response.text}"
    else:
        assert response.status_code in (204, 400), f"{reminder} {form}: {response.text}"


@pytest.mark.parametrize("reminder", EDGE_IDS)
def test_signed_status_callback_for_an_edge_reminder_id_is_not_a_server_error(
    outbox: Sent, reminder: int
) -> None:
    """A signed, well-formed status callback naming a reminder id no row can have is answered below 500."""
    form = status_form(outbox.sids[0], "delivered", to=PHONES[0])
    response = signed_post("/twilio/status", {"reminder": reminder}, form)
    assert response.status_code < 500, response.text


@given(data=st.data())
@settings(max_examples=EXAMPLES, deadline=None)
def test_signed_inbound_messages_never_get_a_server_error(data: st.DataObject) -> None:
    """A signed inbound SMS from any sender with any body is answered with TwiML (or 400 for what Twilio never sends), never 5xx."""
    sender = data.draw(st.sampled_from(PHONES + NATIONAL) | TEXT, label="From")
    body = data.draw(st.sampled_from(KEYWORDS) | TEXT, label="Body")
    sid = data.draw(st.integers(0, 2**32).map(message_sid) | TEXT, label="MessageSid")
    form = inbound_form(sender, body, sid)
    response = signed_post("/twilio/inbound", {}, form)
    assert response.status_code < 500, f"{form}: {response.text}"
    assert response.status_code in (200, 400), f"{form}: {response.text}"
    if sender in PHONES and sid.startswith("SM") and len(sid) == 34:
        assert response.status_code == 200, f"{form}: {response.text}"
        assert response.text.startswith("<?xml"), response.text
        assert "<Response>" in response.text, response.text
