"""``users add|list|disable``: who may sign in to the dashboard (SPEC 12).

A password is never a command-line argument (it would land in the shell's history and
in ``ps``): ``users add`` asks for it twice on the terminal, or reads one line from
standard input with ``--password-stdin`` (for scripts: ``... --password-stdin <file``).
Only its Argon2id hash is stored. Adding and disabling are audited (``user.added``,
``user.disabled``); disabling also ends the account's open sessions at once.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from reminders.accounts import Role, check_account, check_password, hash_password
from reminders.errors import AccountError

from .root import JsonOpt, app, errors, fail, make_app, out, read_app, utc_text

users = typer.Typer(
    name="users",
    help="Dashboard accounts: add, list, disable.",
    no_args_is_help=True,
)
app.add_typer(users)

RoleOpt = Annotated[
    Role,
    typer.Option("--role", help="coordinator (acknowledges alerts) or viewer (reads only)."),
]


def _password(account: str, from_stdin: bool) -> str:
    """The new password: one line of stdin, or asked twice on the terminal."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt(
            f"Password for {account}", hide_input=True, confirmation_prompt=True
        )
    else:
        fail("no terminal to ask for the password: pipe it in with --password-stdin", 2)
    check_password(password, account)
    return password


@users.command("add")
def add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The account's email address (its sign-in name).")],
    role: RoleOpt,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from one line of stdin."),
    ] = False,
) -> None:
    """Add an account; the password is asked twice (or read with --password-stdin)."""
    application = make_app(ctx)
    with errors():
        account = check_account(email)
        hashed = hash_password(_password(account, password_stdin))
        now = datetime.now(UTC)
        with application.store.write() as tx:
            if tx.users.add(account, role, hashed, now) is None:
                raise AccountError(f"an account {account} exists already")
            tx.audit([{"at": now, "kind": "user.added", "detail": {"user": account, "role": role}}])
    out.print(f"added {escape(account)} ({role})")


@users.command("list")
def listed(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every account: role, when it last signed in, whether it is disabled."""
    application = read_app(ctx)
    with errors(), application.store.read() as tx:
        accounts = tx.users.listed()
    rows = [
        {
            "email": u.email,
            "role": u.role,
            "created_at": utc_text(u.created_at),
            "last_sign_in_at": utc_text(u.last_sign_in_at),
            "disabled_at": utc_text(u.disabled_at),
        }
        for u in accounts
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="Dashboard accounts")
    for column in ("email", "role", "last sign-in (UTC)", "disabled"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            escape(str(row["email"])),
            str(row["role"]),
            str(row["last_sign_in_at"] or "never"),
            str(row["disabled_at"] or ""),
        )
    out.print(table)


@users.command("disable")
def disable(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The account's email address.")],
) -> None:
    """Disable an account: it can no longer sign in, and its open sessions end now."""
    application = read_app(ctx)
    account = email.strip().lower()
    now = datetime.now(UTC)
    with errors(), application.store.write() as tx:
        if not tx.users.disable(account, now):
            raise AccountError(f"no enabled account {account}")
        tx.audit([{"at": now, "kind": "user.disabled", "detail": {"user": account}}])
    out.print(f"disabled {escape(account)}")
