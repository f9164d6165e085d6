"""`platformctl publish` and `platformctl feeds poll`: content publication from the command line."""

from __future__ import annotations

import typer

from cli.context import cli_errors, console, err_console, fail, state

feeds_app = typer.Typer(help="Poll the sites' RSS or Atom feeds for new posts.",
                        no_args_is_help=True)


@cli_errors
def publish(
    site: str = typer.Option(..., "--site", help="The site the post belongs to."),
    path: str = typer.Option(..., "--path", help="The post's path or URL, e.g. "
                             "/2026/11/hello-world/ (normalised)."),
    title: str = typer.Option(..., "--title", help="The post's title (1 to 500 characters)."),
    published_at: str = typer.Option(None, "--published-at", help="ISO 8601 date or time, e.g. "
                                     "2026-11-25T09:30:00+01:00 (no offset: UTC) \\[default: "
                                     "now].", show_default=False),
) -> None:
    """Announce a new post: queue a publish event for the listener (page, live event, notices)."""
    from appliance.connections import open_redis, open_sql
    from appliance.services.publishing import publish as publish_post

    settings = state.settings
    publication = publish_post(open_redis(settings), open_sql(settings), site, path, title,
                               published_at, max_path_length=settings.max_path_length,
                               source="cli")
    err_console.print(f"Queued {publication.site} {publication.path} {publication.title!r}, "
                      f"published {publication.published_at.isoformat(sep=' ')} UTC; event id:",
                      highlight=False, markup=False, soft_wrap=True)
    typer.echo(publication.event_id)


@feeds_app.command("poll")
@cli_errors
def feeds_poll(
    site: str = typer.Option(None, "--site", help="Poll only this site's feed \\[default: "
                             "every site with a feed].", show_default=False),
) -> None:
    """Poll the feeds now, once (the flusher polls them every OVATION_FEED_POLL_INTERVAL_S)."""
    from appliance.connections import open_redis, open_sql
    from appliance.jobs.feeds import poll_feeds

    settings = state.settings
    reports = poll_feeds(open_redis(settings), open_sql(settings), site,
                         max_path_length=settings.max_path_length)
    if not reports:
        console.print("No site has a feed: set one with `platformctl site set NAME --feed "
                      "URL`.", highlight=False, markup=False)
        return
    for report in reports:
        console.print(report.describe(), highlight=False, markup=False, soft_wrap=True)
    failed = [report.site for report in reports if report.outcome == "failed"]
    if failed:
        fail(f"{len(failed)} of {len(reports)} feeds failed: {', '.join(failed)}.")
