"""`platformctl webhook add|list|remove`: a site's signed HTTP notification endpoints."""

from __future__ import annotations

import typer
from rich.table import Table

from cli.commands.comments import plain
from cli.context import cli_errors, console, fail, state

webhook_app = typer.Typer(help="Add, list and remove a site's webhooks.", no_args_is_help=True)


@webhook_app.command("add")
@cli_errors
def add(
    site: str = typer.Argument(..., help="The site whose notifications it receives."),
    url: str = typer.Argument(..., help="An http:// or https:// URL."),
    fmt: str = typer.Option("json", "--format", help="json (signed Ovation payload), slack "
                            "or discord (incoming-webhook messages)."),
    event: list[str] = typer.Option(None, "--event", help="Only this event (new_comment, "
                                    "pending_comment, reply, new_post); repeat for several. "
                                    "Default: all.", show_default=False),
) -> None:
    """Add a webhook; prints its secret once (it signs every request)."""
    from appliance.connections import open_sql
    from appliance.notify.subscriptions import add_webhook
    from appliance.notify.url_safety import check_target

    settings = state.settings
    try:
        check_target(url, settings.notify_webhook_allow_private)
    except OSError as exc:
        fail(f"{exc}; check the URL's host name.")
    webhook = add_webhook(open_sql(settings), site, url, fmt, event or [])
    console.print(f"Added webhook {webhook.id} for {plain(site)}: {plain(url)}")
    console.print(f"Secret (shown once, keep it to verify signatures): {webhook.secret}",
                  soft_wrap=True)


@webhook_app.command("list")
@cli_errors
def webhook_list(
    site: str = typer.Option(None, "--site", help="Only this site.", show_default=False),
) -> None:
    """List webhooks (secrets are not shown)."""
    from appliance.connections import open_sql
    from appliance.notify.subscriptions import list_webhooks

    hooks = list_webhooks(open_sql(state.settings), site)
    table = Table("id", "site", "url", "format", "events", "added",
                  title=f"{len(hooks)} webhook(s)")
    for hook in hooks:
        table.add_row(str(hook.id), plain(hook.site), plain(hook.url), hook.format,
                      ", ".join(hook.events) or "all", hook.created_at.strftime("%Y-%m-%d"))
    console.print(table)


@webhook_app.command("remove")
@cli_errors
def remove(webhook_id: int = typer.Argument(..., help="The webhook's id (see `list`).")) -> None:
    """Remove a webhook; its waiting deliveries are dropped."""
    from appliance.connections import open_sql
    from appliance.notify.subscriptions import remove_webhook

    remove_webhook(open_sql(state.settings), webhook_id)
    console.print(f"Removed webhook {webhook_id}.")
