"""``reminders users add|list|disable`` as an operator runs them (SPEC 12)."""

from __future__ import annotations

import sqlalchemy as sa

from reminders.accounts import verify_password
from reminders.testing import runner
from tests.acceptance.conftest import Cli

PASSWORD = "correct horse battery staple"


def users(cli: Cli, *args: str, stdin: str | None = None) -> runner.Result:
    """``reminders users ARGS`` in ``cli``'s folder."""
    result = runner.run(cli.folder, cli.database, "users", *args, stdin=stdin)
    assert "Traceback" not in result.stdout + result.stderr, str(result)
    return result


def stored_hash(cli: Cli, email: str) -> str:
    """The password hash stored for ``email``."""
    engine = sa.create_engine(cli.database)
    with engine.connect() as conn:
        value = conn.execute(
            sa.text("SELECT password_hash FROM users WHERE email = :e"), {"e": email}
        ).scalar_one()
    engine.dispose()
    return str(value)


def test_add_reads_the_password_from_stdin_and_stores_only_an_argon2_hash(cli: Cli) -> None:
    """``users add --password-stdin`` stores the account in lower case with an Argon2id hash of the piped password, never the password itself."""
    done = users(
        cli,
        "add",
        "Kim@Example.com",
        "--role",
        "coordinator",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert done.code == 0, str(done)
    assert done.stdout.strip() == "added kim@example.com (coordinator)"
    hashed = stored_hash(cli, "kim@example.com")
    assert hashed.startswith("$argon2id$")
    assert PASSWORD not in hashed
    assert verify_password(hashed, PASSWORD)
    listed = users(cli, "list", "--json").stdout
    assert '"email": "kim@example.com"' in listed
    assert '"role": "coordinator"' in listed


def test_add_without_a_terminal_or_stdin_flag_asks_for_the_flag_and_stores_nothing(
    cli: Cli,
) -> None:
    """With no terminal to prompt on and no --password-stdin, add exits 2 saying how, and adds nobody (not even a database)."""
    done = users(cli, "add", "kim@example.com", "--role", "viewer")
    assert done.code == 2
    assert "--password-stdin" in done.stderr
    listed = users(cli, "list", "--json")
    assert (listed.code, listed.stdout) == (1, ""), str(listed)
    assert "no database at" in listed.stderr, str(listed)


def test_add_refuses_a_short_password_a_bad_role_and_a_second_account_of_the_same_name(
    cli: Cli,
) -> None:
    """A password under 12 characters (exit 1), an unknown role (exit 2) and an existing email (exit 1) are refused with one line each."""
    short = users(
        cli, "add", "kim@example.com", "--role", "viewer", "--password-stdin", stdin="short\n"
    )
    assert (short.code, short.stderr.strip()) == (
        1,
        "error: the password must have at least 12 characters",
    )
    assert (
        users(
            cli, "add", "kim@example.com", "--role", "admin", "--password-stdin", stdin=PASSWORD
        ).code
        == 2
    )
    assert (
        users(
            cli, "add", "kim@example.com", "--role", "viewer", "--password-stdin", stdin=PASSWORD
        ).code
        == 0
    )
    again = users(
        cli, "add", "KIM@example.com", "--role", "viewer", "--password-stdin", stdin=PASSWORD
    )
    assert (again.code, again.stderr.strip()) == (
        1,
        "error: an account kim@example.com exists already",
    )


def test_disable_marks_the_account_and_says_when_there_is_none(cli: Cli) -> None:
    """``users disable`` marks the account disabled (shown by list); disabling it again, or an unknown one, exits 1."""
    users(cli, "add", "lee@example.com", "--role", "viewer", "--password-stdin", stdin=PASSWORD)
    assert users(cli, "disable", "lee@example.com").code == 0
    assert '"disabled_at": null' not in users(cli, "list", "--json").stdout
    again = users(cli, "disable", "lee@example.com")
    assert (again.code, again.stderr.strip()) == (1, "error: no enabled account lee@example.com")
