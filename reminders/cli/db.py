"""``db current`` and ``db upgrade``: the database schema, for operators who migrate first.

Every command migrates the database when it opens it, so nothing here is needed to run
the service. These make the upgrade a step of its own: back up, ``db upgrade`` (under the
same lock the service takes, so it is safe beside running instances of the same
version), check ``db current``, then start the new version. Neither changes a database
that a newer release migrated (its revision is unknown here): ``current`` reports it and
exits 1, ``upgrade`` refuses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.markup import escape

from reminders.store import Store, migrate

from .root import JsonOpt, app, errors, fail, make_app, out

db = typer.Typer(
    name="db",
    help="The database schema: the revision it is at, and the upgrade to this version's.",
    no_args_is_help=True,
)
app.add_typer(db)


@contextmanager
def _opened(ctx: typer.Context, *, create: bool) -> Iterator[Store]:
    """The store named by --database (or the default), opened without migrating it.

    Errors of the project become one line on stderr and exit 1 (see ``errors``).
    """
    application = make_app(ctx)
    if not create and not application.database_exists():
        fail(
            f"no database at {escape(application.database_url)}: "
            "`reminders db upgrade` (or any command) creates it"
        )
    with errors():
        store = Store(application.database_url, migrate=False)
        try:
            yield store
        finally:
            store.close()


@db.command()
def current(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The schema revision of the database and whether it is this version's head; changes nothing.

    Exit 1 if the revision is unknown to this version (a newer release migrated it).
    """
    with _opened(ctx, create=False) as store:
        at = migrate.revisions(store.engine)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "database": store.safe_url,
                    "current": at.current,
                    "head": at.head,
                    "at_head": at.at_head,
                    "newer": at.newer,
                }
            )
        )
    elif at.at_head:
        out.print(f"{at.current} (head)")
    elif at.newer:
        out.print(
            f"{at.current} (unknown to this version, whose head is {at.head}: "
            "a newer release migrated this database)"
        )
    elif at.current is None:
        out.print(f"none (an empty database; head is {at.head}): run `reminders db upgrade`")
    else:
        out.print(f"{at.current} (behind head {at.head}): run `reminders db upgrade`")
    if at.newer:
        raise typer.Exit(1)


@db.command()
def upgrade(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Migrate the database to this version's head (under the service's lock) and say what ran."""
    with _opened(ctx, create=True) as store:
        done = migrate.upgrade(store.engine)
    url = escape(store.safe_url)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "database": store.safe_url,
                    "from": done.before,
                    "to": done.after,
                    "migrated": done.ran,
                }
            )
        )
    elif done.ran:
        out.print(f"migrated {url}: {done.before or 'empty'} -> {done.after}")
    else:
        out.print(f"{url} is already at head {done.after}: nothing to do")
