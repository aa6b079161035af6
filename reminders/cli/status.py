"""``status``: counts by status, and every reminder that needs a coordinator, paged.

What needs a coordinator (:class:`~reminders.lifecycle.Attention`), most urgent first:
reminders in doubt (the provider may have them), retrying (a try failed: an outage, a
rate limit), expired after failed tries, and failed; each with its attempts, its code and
what that means in plain words (:mod:`reminders.explain`). A provider outage shows here
while it lasts. The text output pages them (``--page``, ``--limit``); ``--json`` gives
all of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from reminders.app import App
from reminders.explain import STATES, meaning
from reminders.lifecycle import STUCK, Attention
from reminders.store import AttentionItem, AttentionPage, StatusSummary

from .reading import entry_json, styled
from .root import JsonOpt, app, errors, out, print_json, read_app, utc_text

#: Reminders listed per page unless ``--limit`` says otherwise.
PAGE: Final = 50
_UTC: Final = ZoneInfo("UTC")


def attention_json(item: AttentionItem) -> dict[str, Any]:
    """One reminder that needs a coordinator, as ``status --json`` lists it."""
    r = item.reminder
    return {
        **entry_json(r, _UTC),
        "state": item.state.value,
        "meaning": meaning(item.state, r.channel, r.error_code, r.error, r.expires_at),
        "updated_at": utc_text(r.updated_at),
    }


def counted(counts: dict[str, int]) -> str:
    """``3 in doubt, 12 retrying`` (states with none left out), or ``none``."""
    parts = [f"{n} {STATES[Attention(s)]}" for s, n in counts.items() if n]
    return ", ".join(parts) or "none"


def stuck(application: App, since: datetime) -> dict[str, int]:
    """What a tick leaves stuck: in doubt and retrying now, expired after failed tries since ``since``."""
    with application.store.read() as tx:
        counts = tx.views.attention_counts(expired_since=since)
    return {s.value: counts[s] for s in STUCK}


@app.command()
def status(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    page: Annotated[
        int, typer.Option("--page", min=1, help="Which page of what needs a coordinator.")
    ] = 1,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="Reminders per page.")
    ] = PAGE,
) -> None:
    """Counts of patients and reminders by status, the next due time, what needs a coordinator.

    What needs a coordinator (in doubt, retrying, expired after failed tries, failed) is
    listed in full, a page at a time; ``--json`` gives every one of them.
    """
    application = read_app(ctx)
    with errors(), application.store.read() as tx:
        summary = tx.views.summary(failures=0)
        attention = (
            tx.views.attention()
            if as_json
            else tx.views.attention(offset=(page - 1) * limit, limit=limit)
        )
    if as_json:
        items = [attention_json(i) for i in attention.items]
        document = {
            "patients": summary.patients,
            "reminders": summary.reminders,
            "next_due": utc_text(summary.next_due),
            "opted_out": summary.opted_out,
            "attention": {
                "counts": attention.counts,
                "total": attention.total,
                "reminders": items,
            },
            # Before the attention list: the failed ones alone (now every one of them).
            "failures": [i for i in items if i["state"] == Attention.FAILED],
        }
        print_json(document)
        return
    _print_counts(summary)
    _print_attention(attention, limit)


def _print_counts(summary: StatusSummary) -> None:
    table = Table(title="Patients and reminders")
    table.add_column("what")
    table.add_column("status")
    table.add_column("count", justify="right")
    for state, n in sorted(summary.patients.items()):
        table.add_row("patients", state, str(n))
    for state, n in sorted(summary.reminders.items()):
        table.add_row("reminders", styled(state), str(n))
    for channel, n in sorted(summary.opted_out.items()):
        table.add_row("opted out", channel, str(n))
    out.print(table)
    out.print(
        f"next due: {summary.next_due:%Y-%m-%d %H:%M UTC}"
        if summary.next_due
        else "next due: nothing planned"
    )


def _print_attention(attention: AttentionPage, limit: int) -> None:
    """The page as a table, then what each code on it means, once per code and state."""
    total = attention.total
    out.print(f"needs a coordinator: {counted(attention.counts)}")
    if not total:
        return
    first, last = attention.offset + 1, attention.offset + len(attention.items)
    if not attention.items:
        pages = -(-total // limit)
        out.print(f"no reminders on this page: {total} in {pages} page(s) of {limit}")
        return
    table = Table(title="Needs a coordinator (in doubt, retrying, expired, failed)")
    columns = ("patient", "milestone", "channel", "state", "tries", "last change", "deadline")
    for column in (*columns, "code"):
        table.add_column(column, justify="right" if column == "tries" else "left")
    legend: dict[tuple[str, str, Attention], str] = {}
    for item in attention.items:
        r = item.reminder
        code = r.error_code or "-"
        legend.setdefault(
            (code, r.channel, item.state), meaning(item.state, r.channel, r.error_code, r.error)
        )
        table.add_row(
            r.patient_id,
            f"{r.milestone} #{r.occurrence}",
            r.channel,
            STATES[item.state],
            str(r.attempts),
            f"{r.updated_at:%Y-%m-%d %H:%M}",
            f"{r.expires_at:%Y-%m-%d %H:%M}",
            escape(code),
        )
    out.print(table)
    shown = f"showing {first}-{last} of {total} (times in UTC)"
    if last < total:
        page = attention.offset // limit + 2
        more = f" --limit {limit}" if limit != PAGE else ""
        shown += f"; next: reminders status --page {page}{more}"
    out.print(shown)
    out.print("what happened, what to do:")
    for (code, channel, state), text in legend.items():
        out.print(f"  {escape(code)} ({channel}, {STATES[state]}): {escape(text)}")
