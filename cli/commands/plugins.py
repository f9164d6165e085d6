"""`platformctl plugins list`: the reaction-type plugins installed, loaded and shown where."""

from __future__ import annotations

import json

import typer
from rich.table import Table
from rich.text import Text

from cli.context import cli_errors, console, err_console, state

plugins_app = typer.Typer(help="Reaction-type plugins (entry-point group ovation.reactions).",
                          no_args_is_help=True)


def _sites():
    """Every site, or None when the database cannot be read (the list still shows plugins)."""
    from appliance.connections import open_sql
    from appliance.errors import OvationError
    from appliance.storage.site_store import list_sites

    try:
        return [record for record, _pages in list_sites(open_sql(state.settings))]
    except OvationError as exc:
        err_console.print(f"note: sites unknown ({exc.message})", highlight=False)
        return None


def _hook_errors():
    """Hook failures counted in Redis by the web workers, or (None, None) without Redis."""
    from appliance.connections import open_redis
    from appliance.errors import OvationError
    from appliance.storage import counter_store as keys

    try:
        client = open_redis(state.settings)
        errors = {name: int(count) for name, count in client.hgetall(keys.PLUGIN_ERRORS).items()}
        return errors, client.hgetall(keys.PLUGIN_LAST_ERROR)
    except OvationError as exc:
        err_console.print(f"note: hook errors unknown ({exc.message})", highlight=False)
        return None, None


@plugins_app.command("list")
@cli_errors
def plugins_list(
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """Every installed plugin: type, version, kind, package, status, and the sites showing it."""
    from appliance.plugin_registry import ReactionRegistry
    from appliance.services.plugin_report import plugin_rows

    registry = ReactionRegistry.discover(state.settings)
    errors, last_errors = _hook_errors()
    rows = plugin_rows(registry, _sites(), errors, last_errors)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("plugin", "type", "kind", "version", "package", "status", "sites", "errors")
    for row in rows:
        status = Text(row["status"], style={"loaded": "green", "failed": "bold red"}.get(
            row["status"], "yellow"))
        if row["error"]:
            status.append(f"\n{row['error']}", style="red")
        if row["sites"] is None:
            sites = "?"
        else:
            sites = "\n".join(row["sites"]) or ("-" if not row["on_by_default"] else "(none)")
            if row["sites_missing_it"]:
                sites += f"\nwanted by {', '.join(row['sites_missing_it'])}"
        table.add_row(row["plugin"], row["type"], row["kind"] or "-",
                      row["version"], row["package"], status, Text(sites),
                      "?" if row["hook_errors"] is None else str(row["hook_errors"]))
    console.print(table)
    console.print("Types marked `on by default` show on sites that have not chosen; choose "
                  "with `platformctl site set SITE --reactions TYPE,...`.", highlight=False)
