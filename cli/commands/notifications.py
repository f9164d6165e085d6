"""`platformctl notifications list|retry|purge`: see what was sent, what failed, and redo it."""

from __future__ import annotations

import datetime as dt

import typer
from rich.table import Table

from cli.commands.comments import plain
from cli.context import cli_errors, console, fail, state

notifications_app = typer.Typer(help="See, retry and purge notification deliveries.",
                                no_args_is_help=True)


def _queue():
    from appliance.connections import open_redis
    from appliance.notify.queue import DeliveryQueue, QueuePolicy

    settings = state.settings
    return DeliveryQueue(open_redis(settings), QueuePolicy.from_settings(settings))


def _when(timestamp: float) -> str:
    if not timestamp:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


@notifications_app.command("list")
@cli_errors
def notifications_list(
    failed: bool = typer.Option(False, "--failed", help="Only deliveries that failed and "
                                "wait for another attempt."),
    dead: bool = typer.Option(False, "--dead", help="Only the dead letters (out of attempts, "
                              "or refused for good)."),
    limit: int = typer.Option(50, "--limit", min=1, max=10000, help="Most rows shown."),
) -> None:
    """List deliveries, newest first: channel, recipient, status, attempts, last error."""
    if failed and dead:
        fail("Give --failed or --dead, not both.", 2)
    queue = _queue()
    if dead:
        letters = queue.dead_letters(limit)
        table = Table(title=f"{len(letters)} dead letter(s)")
        # Ids are what `retry` takes: never truncated, whatever the terminal width.
        table.add_column("id", no_wrap=True, min_width=15)
        table.add_column("delivery", no_wrap=True, min_width=24)
        for heading in ("channel", "kind", "site", "attempts", "error"):
            table.add_column(heading)
        for letter in letters:
            table.add_row(letter.entry_id, letter.delivery or "(event)", letter.channel,
                          plain(letter.kind), plain(letter.site), letter.attempts or "-",
                          plain(letter.error))
        console.print(table)
        return
    rows = queue.recent(limit, ("retrying",) if failed else None)
    table = Table(title=f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}")
    table.add_column("id", no_wrap=True, min_width=24)
    for heading in ("created", "channel", "kind", "to", "status", "attempts", "next",
                    "last error"):
        table.add_column(heading, no_wrap=heading in ("channel", "status"))
    for row in rows:
        waiting = row.status in ("queued", "retrying")
        table.add_row(row.id, _when(row.created_at), row.channel, row.kind,
                      plain(_recipient(row)), row.status, str(row.attempts),
                      _when(row.next_at) if waiting else "-", plain(row.last_error or "-"))
    console.print(table)


def _recipient(row) -> str:
    if row.channel == "webhook":
        return f"webhook {row.target}"
    if row.channel == "browser":
        return f"visitor {row.target[:8]}…"
    return row.target


@notifications_app.command("retry")
@cli_errors
def retry(
    identifier: str = typer.Argument(None, help="A delivery id, or a dead letter's id "
                                     "(from `list --dead`).", show_default=False),
    all_dead: bool = typer.Option(False, "--all-dead", help="Retry every dead letter."),
) -> None:
    """Send a dead letter again with fresh attempts (or a waiting delivery right now)."""
    if bool(identifier) == all_dead:
        fail("Give a delivery id or --all-dead.", 2)
    queue = _queue()
    if all_dead:
        console.print(f"Requeued {queue.retry_all_dead()} dead letter(s).")
        return
    console.print(f"{plain(identifier)}: {queue.retry(identifier)}.")


@notifications_app.command("purge")
@cli_errors
def purge(
    older_than_days: float = typer.Option(0, "--older-than-days", min=0,
                                          help="Only deliveries created longer ago."),
    dead: bool = typer.Option(False, "--dead", help="Also forget the dead letters."),
) -> None:
    """Forget finished deliveries (delivered, dropped); waiting ones are always kept."""
    removed = _queue().purge(older_than_days * 86400, dead)
    console.print(f"Purged {removed} deliver{'y' if removed == 1 else 'ies'}"
                  + (" and the dead letters." if dead else "."))
