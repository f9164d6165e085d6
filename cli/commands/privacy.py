"""`platformctl visitor export|erase`: a reader's data on request (they give their visitor id)."""

from __future__ import annotations

import json

import typer

from cli.context import cli_errors, console, state

visitor_app = typer.Typer(help="Export or erase one reader's data (GDPR requests).",
                          no_args_is_help=True)


def _open():
    from appliance.connections import open_redis, open_sql

    settings = state.settings
    return open_redis(settings), open_sql(settings), settings.hashing_key()


@visitor_app.command("export")
@cli_errors
def visitor_export(
    site: str = typer.Argument(..., help="The site."),
    visitor_id: str = typer.Argument(..., help="The reader's visitor id (the widget shows it)."),
) -> None:
    """Print, as JSON, everything stored about this visitor on this site."""
    from appliance.services.privacy import export_visitor
    from appliance.services.sites import validate_site_name
    from appliance.services.visitors import validate_visitor_id

    validate_site_name(site)
    validate_visitor_id(visitor_id)
    client, database, key = _open()
    print(json.dumps(export_visitor(client, database, key, site, visitor_id), indent=2,
                     ensure_ascii=False))


@visitor_app.command("erase")
@cli_errors
def visitor_erase(
    site: str = typer.Argument(..., help="The site."),
    visitor_id: str = typer.Argument(..., help="The reader's visitor id."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Erase this visitor's reaction state and comments on this site (counts stay)."""
    from appliance.services.privacy import erase_visitor
    from appliance.services.sites import validate_site_name
    from appliance.services.visitors import validate_visitor_id

    validate_site_name(site)
    validate_visitor_id(visitor_id)
    if not yes:
        typer.confirm(f"Erase the data of visitor {visitor_id} on {site}?", abort=True)
    client, database, key = _open()
    erased = erase_visitor(client, database, key, site, visitor_id)
    console.print(f"Erased {erased['reaction_states']} reaction states and "
                  f"{erased['comments']} comments of that visitor on {site}.")
