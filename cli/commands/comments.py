"""`platformctl comments list|approve|reject|spam|delete|ban|bans|unban`: moderation from the
terminal."""

from __future__ import annotations

import json
import re

import typer
from rich.markup import escape
from rich.table import Table

from cli.context import cli_errors, console, fail, state

comments_app = typer.Typer(help="List and moderate comments.", no_args_is_help=True)


def _open():
    from appliance.connections import open_redis, open_sql

    settings = state.settings
    return open_redis(settings), open_sql(settings)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain(value: str) -> str:
    """Reader-supplied text made inert for a terminal: no escape sequences, no rich markup."""
    return escape(_CONTROL.sub(" ", value))


def _excerpt(markdown: str, width: int = 60) -> str:
    text = " ".join(_CONTROL.sub(" ", markdown).split())
    return plain(text if len(text) <= width else text[: width - 1] + "…")


@comments_app.command("list")
@cli_errors
def comments_list(
    site: str = typer.Option(None, "--site", help="Only this site.", show_default=False),
    pending: bool = typer.Option(False, "--pending", help="Only comments awaiting moderation."),
    status: str = typer.Option(None, "--status", help="Only this status (pending, approved, "
                               "rejected, spam, deleted).", show_default=False),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="Most comments shown."),
) -> None:
    """List comments, newest first (text shown as plain text, never as markup)."""
    from appliance.connections import open_sql
    from appliance.storage import comment_store

    wanted = "pending" if pending else status
    if wanted and wanted not in comment_store.STATUSES:
        fail(f"--status must be one of {', '.join(comment_store.STATUSES)}.", 2)
    database = open_sql(state.settings)
    rows = comment_store.list_comments(database, site, wanted, limit)
    table = Table(title=f"{len(rows)} comment(s)")
    # The id is what moderation commands take: never truncated, whatever the terminal width.
    table.add_column("id", no_wrap=True, min_width=32)
    for heading in ("site", "page", "author", "status", "posted", "comment"):
        table.add_column(heading)
    for row in rows:
        table.add_row(row.id, row.site, plain(row.path), plain(row.author_name or "-"),
                      row.status, row.created_at.strftime("%Y-%m-%d %H:%M"),
                      _excerpt(row.body_markdown))
    console.print(table)


def _set_status(ids: list[str], status: str, verb: str) -> None:
    from appliance.services.moderation import moderate

    client, database = _open()
    changed = moderate(client, database, ids, status)
    for comment in changed:
        console.print(f"{verb} {comment.id} on {comment.site}{plain(comment.path)}")


@comments_app.command("approve")
@cli_errors
def approve(ids: list[str] = typer.Argument(..., help="Comment ids.")) -> None:
    """Approve comments: they appear on every open page at once."""
    _set_status(ids, "approved", "approved")


@comments_app.command("reject")
@cli_errors
def reject(ids: list[str] = typer.Argument(..., help="Comment ids.")) -> None:
    """Reject comments: they disappear from the thread."""
    _set_status(ids, "rejected", "rejected")


@comments_app.command("spam")
@cli_errors
def spam(ids: list[str] = typer.Argument(..., help="Comment ids.")) -> None:
    """Mark comments as spam: they disappear from the thread."""
    _set_status(ids, "spam", "marked as spam")


@comments_app.command("delete")
@cli_errors
def delete(ids: list[str] = typer.Argument(..., help="Comment ids.")) -> None:
    """Delete comments: their text goes; replies keep their place under "\\[deleted]"."""
    _set_status(ids, "deleted", "deleted")


@comments_app.command("ban")
@cli_errors
def ban(
    comment_id: str = typer.Argument(..., help="A comment of the visitor to ban."),
    ip: bool = typer.Option(True, "--ip/--no-ip", help="Also ban the comment's network "
                            "(IP, or IPv6 /64)."),
    reason: str = typer.Option("", "--reason", help="Why (kept with the ban)."),
    remove: bool = typer.Option(True, "--remove/--keep", help="Also mark the comment as spam."),
) -> None:
    """Ban the author of a comment (by visitor and network hash) from commenting on its site."""
    from appliance.services.moderation import ban_author

    client, database = _open()
    banned = ban_author(client, database, comment_id, ip, reason, remove)
    console.print(f"Banned the {' and '.join(banned) or 'author'} of {comment_id}"
                  + (" and marked the comment as spam." if remove else "."))


@comments_app.command("bans")
@cli_errors
def bans_list(
    site: str = typer.Option(None, "--site", help="Only this site.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List bans, newest first: the id `unban --ban-id` takes, site, kind, hash, reason."""
    from appliance.connections import open_sql
    from appliance.services.bans import describe
    from appliance.storage import comment_store

    rows = [describe(ban) for ban in comment_store.list_bans(open_sql(state.settings), site)]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("No bans.", highlight=False)
        return
    table = Table(title=f"{len(rows)} ban(s)")
    table.add_column("id", no_wrap=True)
    for heading in ("site", "kind", "hash", "since (UTC)", "reason"):
        table.add_column(heading)
    for row in rows:
        table.add_row(str(row["id"]), row["site"], row["kind"], row["value_hash"],
                      row["created_at"][:16].replace("T", " "), plain(row["reason"] or "-"))
    console.print(table)


@comments_app.command("unban")
@cli_errors
def unban(
    comment_id: str = typer.Argument(None, metavar="[ID]", show_default=False,
                                     help="A comment of the visitor to unban."),
    ip: bool = typer.Option(True, "--ip/--no-ip", help="Also lift the ban of the comment's "
                            "network (IP, or IPv6 /64)."),
    ban_id: str = typer.Option(None, "--ban-id", help="Lift this one ban instead (an id "
                               "from `comments bans`).", show_default=False),
) -> None:
    """Lift the bans of a comment's author (as `ban` made them), or one ban by its id."""
    from appliance.services import bans

    if (comment_id is None) == (ban_id is None):
        fail("Give either a comment id or --ban-id ID.", 2)
    # Redis too: the running web workers learn there that the site's bans changed.
    client, database = _open()
    if ban_id is not None:
        lifted = [bans.lift_ban(client, database, bans.ban_id_from(ban_id))]
    else:
        lifted = bans.lift_author_bans(client, database, comment_id, ip)
    for ban in lifted:
        console.print(f"Lifted ban {ban.id}: {bans.KIND_NAMES.get(ban.kind, ban.kind)} "
                      f"{ban.value_hash} on {ban.site}.", highlight=False, markup=False)
