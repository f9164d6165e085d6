"""`platformctl site add|list|set`: the sites that may embed the widget, and their feeds."""

from __future__ import annotations

import typer
from rich.table import Table

from cli.context import cli_errors, console, fail, state

site_app = typer.Typer(help="Manage sites (blogs) that embed the widget.", no_args_is_help=True)


def _database():
    from appliance.connections import open_sql

    return open_sql(state.settings)


@site_app.command("add")
@cli_errors
def site_add(
    name: str = typer.Argument(..., help="Short name used in the embed snippet, e.g. myblog."),
    origin: list[str] = typer.Option([], "--origin", help="Allowed origin, e.g. "
                                     "https://blog.example (repeatable)."),
    title: str = typer.Option("", "--title", help="Human title."),
    published_only: bool = typer.Option(False, "--published-only", help="Count only pages "
                                        "published through `publish` or the feed."),
) -> None:
    """Add a site."""
    from appliance.services.sites import add_site

    record = add_site(_database(), name, origin, title, not published_only)
    console.print(f"Added site {record.name} "
                  f"(origins: {', '.join(record.origins) or 'none yet'}).")
    if not record.origins:
        console.print(f"Browsers can use it once you add an origin: platformctl site set "
                      f"{record.name} --origin https://your.blog", highlight=False)


@site_app.command("list")
@cli_errors
def site_list() -> None:
    """List sites with their origins and page counts."""
    from appliance.storage.site_store import list_sites

    table = Table("site", "title", "origins", "pages", "counts", "reactions", "rate limits")
    for record, pages in list_sites(_database()):
        table.add_row(record.name, record.title, "\n".join(record.origins) or "-", str(pages),
                      "any page" if record.accept_unpublished_pages else "published only",
                      _reactions_text(record, "\n"),
                      _limits_text(record.rate_limits, "\n") or "defaults")
    console.print(table)


def _reactions_text(record, separator: str = ", ") -> str:
    """`view, like, emoji (heart tada)`, or `defaults` when the site has not chosen."""
    if record.reactions is None:
        return "defaults"
    shown = []
    for name in record.reactions:
        keys = record.reaction_options.get(name, {}).get("choices")
        shown.append(f"{name} ({' '.join(keys)})" if keys else name)
    return separator.join(shown)


def _limits_text(limits: dict[str, int], separator: str = ", ") -> str:
    """A site's rate-limit overrides, e.g. `admin_per_min=0 (no limit), reads_per_min=300`."""
    return separator.join(f"{name}={value}" + (" (no limit)" if value == 0 else "")
                          for name, value in sorted(limits.items()))


@site_app.command("set")
@cli_errors
def site_set(
    name: str = typer.Argument(..., help="The site to change."),
    origin: list[str] = typer.Option([], "--origin", help="Add an allowed origin."),
    remove_origin: list[str] = typer.Option([], "--remove-origin", help="Remove an origin."),
    title: str = typer.Option(None, "--title", help="New title."),
    published_only: bool = typer.Option(None, "--published-only/--any-page",
                                        help="Count only published pages, or any page.",
                                        show_default=False),
    feed: str = typer.Option(None, "--feed", help="RSS or Atom feed URL (http or https) to "
                             "poll for new posts.", show_default=False),
    no_feed: bool = typer.Option(False, "--no-feed", help="Stop polling the site's feed."),
    moderation: str = typer.Option(None, "--moderation", help="Which new comments wait for a "
                                   "moderator: open (none), all, first_time, links.",
                                   show_default=False),
    owner_email: str = typer.Option(None, "--owner-email", help="Where new-comment "
                                    "notifications go ('' for none).", show_default=False),
    applause_cap: int = typer.Option(None, "--applause-cap", min=1, max=100000,
                                     help="This site's per-visitor applause cap.",
                                     show_default=False),
    rate_limit: list[str] = typer.Option([], "--rate-limit", metavar="NAME=N",
                                         help="Override a rate limit for this site "
                                         "(repeatable; NAME=default removes the override): "
                                         "interactions_per_min, "
                                         "interactions_per_visitor_per_min, reads_per_min, "
                                         "admin_per_min, comment_rate_limit; 0: no limit."),
    reactions: str = typer.Option(None, "--reactions", metavar="TYPE,TYPE,...",
                                  help="The reaction types the widget shows, in order, e.g. "
                                  "view,like,applause,emoji (see `platformctl plugins list`); "
                                  "`default` for the types that are on by default.",
                                  show_default=False),
    choices: list[str] = typer.Option([], "--choices", metavar="TYPE=KEY,KEY,...",
                                      help="The options a choice type shows on this site, e.g. "
                                      "emoji=heart,tada (repeatable; TYPE=default for the "
                                      "plugin's default set)."),
) -> None:
    """Change a site's origins, title, page policy, feed, moderation, owner e-mail or rate
    limits."""
    import dataclasses

    from appliance.jobs.feeds import validate_feed_url
    from appliance.services.sites import normalise_origin
    from appliance.storage.site_store import get_site, update_site

    if feed is not None and no_feed:
        fail("give --feed URL or --no-feed, not both.", 2)
    from appliance.services.comments import EMAIL, MODERATION_MODES

    if moderation is not None and moderation not in MODERATION_MODES:
        fail(f"--moderation must be one of {', '.join(MODERATION_MODES)}.", 2)
    if owner_email and not EMAIL.match(owner_email):
        fail(f"--owner-email {owner_email!r} is not an e-mail address.", 2)
    feed_url = validate_feed_url(feed) if feed is not None else None
    database = _database()
    record = get_site(database, name)
    if record is None:
        fail(f"no site is named {name!r} (see `platformctl site list`).")
    from appliance.services.rate_limits import change_site_limits

    rate_limits = change_site_limits(record.rate_limits, rate_limit)
    removed = {normalise_origin(o) for o in remove_origin}
    origins = tuple(dict.fromkeys(
        [o for o in record.origins if o not in removed] + [normalise_origin(o) for o in origin]))
    # replace(), not a new record: fields this command does not know keep their values.
    updated = dataclasses.replace(
        record, title=record.title if title is None else title, origins=origins,
        accept_unpublished_pages=(record.accept_unpublished_pages if published_only is None
                                  else not published_only),
        feed_url=None if no_feed else (feed_url or record.feed_url),
        moderation=record.moderation if moderation is None else moderation,
        owner_email=record.owner_email if owner_email is None else owner_email,
        reaction_options=record.reaction_options if applause_cap is None else {
            **record.reaction_options, "applause": {
                **record.reaction_options.get("applause", {}),
                "per_visitor_cap": applause_cap}})
    updated = dataclasses.replace(updated, rate_limits=rate_limits)
    if reactions is not None or choices:
        from appliance.plugin_registry import ReactionRegistry
        from appliance.services.site_reactions import change_site_reactions

        updated = change_site_reactions(ReactionRegistry.discover(state.settings), updated,
                                        reactions, choices)
    update_site(database, updated)
    console.print(f"Updated site {name}: origins {', '.join(origins) or 'none'}; "
                  f"{'any page' if updated.accept_unpublished_pages else 'published pages only'}"
                  + (f"; feed {updated.feed_url}" if updated.feed_url else "")
                  + f"; comments: {updated.moderation}"
                  + (f", notifying {updated.owner_email}" if updated.owner_email else "")
                  + (f"; rate limits {_limits_text(updated.rate_limits)}"
                     if updated.rate_limits else "")
                  + f"; reactions: {_reactions_text(updated)}.",
                  highlight=False, soft_wrap=True)
