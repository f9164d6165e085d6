"""`platformctl token create|list|revoke`: bearer tokens for the admin API."""

from __future__ import annotations

import enum

import typer
from rich.table import Table

from cli.context import cli_errors, console, err_console, state

token_app = typer.Typer(help="Manage admin API tokens (shown once, stored only as a hash).",
                        no_args_is_help=True)


class Scope(enum.StrEnum):
    read = "read"
    moderate = "moderate"
    admin = "admin"


def _database():
    from appliance.connections import open_sql

    return open_sql(state.settings)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@token_app.command("create")
@cli_errors
def token_create(
    name: str = typer.Argument(..., help="What the token is for, e.g. deploy-script."),
    scope: Scope = typer.Option(Scope.read, "--scope", help="read < moderate < admin; each "
                                "includes the ones before it."),
    site: str = typer.Option(None, "--site", help="Bind the token to this site only.",
                             show_default=False),
) -> None:
    """Create a token and print it once: only its hash is kept."""
    from appliance.services.tokens import create_token

    created = create_token(_database(), name, scope.value, site)
    record = created.record
    err_console.print(f"Created token {record.id} {record.name!r}: scope {record.scope}, "
                      f"{'site ' + record.site if record.site else 'all sites'}.",
                      highlight=False, markup=False, soft_wrap=True)
    # The token alone on stdout, so `TOKEN=$(platformctl token create ...)` captures just it.
    typer.echo(created.token)
    err_console.print("Copy it now: it will not be shown again (Ovation keeps only its "
                      "SHA-256). Send it as `Authorization: Bearer TOKEN`.",
                      style="bold yellow", highlight=False, markup=False, soft_wrap=True)


@token_app.command("list")
@cli_errors
def token_list() -> None:
    """List tokens (never the tokens themselves): id, name, scope, site, use, status."""
    from appliance.services.tokens import list_tokens

    tokens = list_tokens(_database())
    if not tokens:
        console.print("No tokens yet: create one with `platformctl token create NAME`.",
                      highlight=False, markup=False)
        return
    table = Table("id", "name", "scope", "site", "created (UTC)", "last used (UTC)", "status")
    for record in tokens:
        table.add_row(str(record.id), record.name, record.scope, record.site or "all sites",
                      _when(record.created_at), _when(record.last_used_at),
                      "active" if record.active else f"revoked {_when(record.revoked_at)}")
    console.print(table)


@token_app.command("revoke")
@cli_errors
def token_revoke(
    token_id: int = typer.Argument(..., metavar="ID", help="The token's id (see `token list`)."),
) -> None:
    """Revoke a token: it stops working at once."""
    from appliance.services.tokens import revoke_token

    record, changed = revoke_token(_database(), token_id)
    if changed:
        console.print(f"Revoked token {record.id} {record.name!r}.", highlight=False,
                      markup=False)
    else:
        console.print(f"Token {record.id} {record.name!r} was revoked already "
                      f"({_when(record.revoked_at)} UTC).", highlight=False, markup=False)
