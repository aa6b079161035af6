"""The installed CLI never prints a secret: not in logs (even at DEBUG), not in output, not in errors.

``tick`` runs with both providers refusing our credentials (the error paths, where a
credential is most likely to be echoed), ``run`` with both accepting them (the start-up
notes and the normal sends), and a command with a database URL that carries a password.
Email goes over STARTTLS with a login to a real SMTP server whose certificate comes from
a test CA, trusted through SMTP_CA_FILE.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trustme

from reminders.testing import runner
from reminders.testing.peer import closed_port
from reminders.testing.runner import Result
from reminders.testing.smtp import TlsSmtpServer
from reminders.testing.twilio import DEFAULT_ACCOUNT_SID, FakeTwilio

from .conftest import Cli, sample_patients
from .service import PATIENTS, RunningService, wait_for, write_config

TWILIO_TOKEN = "twilio-token-0b7e5d93a1"
SMTP_PASSWORD = "smtp-pw-c26f1e84d7"
SECRET_KEY = "secret-key-5a9d02c7e3"
DB_PASSWORD = "db-pw-3e71b6c0f2"
USER = "reminders@clinic.example.com"
FROM = "+12015550100"


def leaks(text: str) -> list[str]:
    """The secrets that appear in ``text``, as written or base64-encoded (an AUTH exchange)."""
    forms = {
        secret: [secret, base64.b64encode(secret.encode()).decode()]
        for secret in (TWILIO_TOKEN, SMTP_PASSWORD, SECRET_KEY, DB_PASSWORD)
    }
    forms[SMTP_PASSWORD].append(base64.b64encode(f"\0{USER}\0{SMTP_PASSWORD}".encode()).decode())
    forms[TWILIO_TOKEN].append(
        base64.b64encode(f"{DEFAULT_ACCOUNT_SID}:{TWILIO_TOKEN}".encode()).decode()
    )
    return [secret for secret, written in forms.items() if any(w in text for w in written)]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """The CA of the test SMTP relay."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    """The relay's CA as the PEM file SMTP_CA_FILE names."""
    path = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def provider_env(twilio: FakeTwilio, relay: TlsSmtpServer, ca_file: str) -> dict[str, str]:
    """Production settings with our secrets, pointing at the local peers."""
    return {
        "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": FROM,
        "TWILIO_API_BASE_URL": twilio.url,
        "TWILIO_RATE_LIMIT": "0",
        "SMTP_HOST": relay.host,
        "SMTP_PORT": str(relay.port),
        "SMTP_SECURITY": "starttls",
        "SMTP_USERNAME": USER,
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "SMTP_CA_FILE": ca_file,
        "EMAIL_FROM": f"Clinic <{USER}>",
        "REMINDERS_PUBLIC_URL": "https://reminders.example.com",
        "REMINDERS_SECRET_KEY": SECRET_KEY,
        "REMINDERS_LOG_LEVEL": "DEBUG",
        "REMINDERS_LOG_FORMAT": "json",
    }


def reminders(cli: Cli, env: dict[str, str], *args: str) -> Result:
    """Run ``reminders --config ... --database ... *args`` with ``env`` added to a clean environment."""
    return runner.run(cli.folder, cli.database, *args, env=env)


def test_tick_with_refused_credentials_prints_no_secret(
    tmp_path: Path, ca: trustme.CA, ca_file: str
) -> None:
    """``tick`` (DEBUG logs) whose Twilio token and SMTP password are refused, then ``timeline`` and ``status``, print no secret.

    Catches: a credential in a log line, an error message or the stored error shown to coordinators.
    """
    cli = Cli(tmp_path / "clinic")
    cli.write_patients(sample_patients())
    with (
        FakeTwilio(auth_token="the-real-token") as twilio,
        TlsSmtpServer(ca, "starttls", users={USER: "the-real-password"}) as relay,
    ):
        env = provider_env(twilio, relay, ca_file)
        tick = reminders(cli, env, "tick", "--now", "2026-11-21T15:30:00Z")
        assert twilio.messages == []
        assert relay.logins, "the relay was never asked to log in"
        assert not any(login.accepted for login in relay.logins)
    timeline = reminders(cli, env, "timeline", "P-1001", "--json")
    status = reminders(cli, env, "status")
    # Refused credentials are retried (the clinic's configuration, not the patient's): tick
    # exits 3, reminders stuck retrying.
    assert (tick.code, timeline.code, status.code) == (3, 0, 0), f"{tick}\n{timeline}\n{status}"
    errors = {(row["channel"], row["error_code"]) for row in timeline.json() if row["error"]}
    assert errors == {("sms", "20003"), ("email", "535")}, timeline
    for result in (tick, timeline, status):
        assert leaks(result.stdout + result.stderr) == [], str(result)


def test_run_with_accepted_credentials_prints_no_secret(
    tmp_path: Path, ca: trustme.CA, ca_file: str
) -> None:
    """``run`` at DEBUG that sends by SMS and by email (STARTTLS + login) prints no secret, from start to stop.

    Catches: a credential in the start-up notes, a request log, or the shutdown log.
    """
    dana = PATIENTS[0]
    with (
        FakeTwilio(auth_token=TWILIO_TOKEN) as twilio,
        TlsSmtpServer(ca, "starttls", users={USER: SMTP_PASSWORD}) as relay,
    ):
        service = RunningService(tmp_path / "clinic", twilio, relay)  # type: ignore[arg-type]
        service.env.update(provider_env(twilio, relay, ca_file))
        service.env["REMINDERS_PUBLIC_URL"] = service.public_url
        try:
            write_config(service.folder, [dana], first_in=-60)
            service.start()
            service.wait_healthy()
            wait_for(
                "the first SMS and email",
                lambda: twilio.messages and relay.messages,
                timeout=20,
            )
            assert service.http.get("/metrics").status_code == 200
            assert service.http.get("/readyz").status_code == 200
            code, _ = service.stop()
            output = service.output()
        finally:
            service.close()
    assert code == 0, output
    assert [(login.user, login.accepted) for login in relay.logins] == [(USER, True)]
    assert '"service.started"' in output
    assert leaks(output) == [], output


def test_database_url_password_is_not_printed_when_the_database_is_unreachable(
    tmp_path: Path,
) -> None:
    """A command whose PostgreSQL URL carries a password, with the server unreachable, exits 1 without printing it.

    Catches: the database URL echoed with its password in the error line.
    """
    cli = Cli(tmp_path / "clinic")
    with closed_port() as port:
        cli.database = f"postgresql+psycopg://reminders:{DB_PASSWORD}@127.0.0.1:{port}/reminders"
        result = reminders(cli, {}, "status")
    assert result.code == 1, str(result)
    assert "127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr
    assert leaks(result.stdout + result.stderr) == [], str(result)
