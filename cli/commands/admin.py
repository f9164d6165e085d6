"""Configuration, migrations and flushing: `config show|example`, `migrate`, `flush --now`."""

from __future__ import annotations

import typer
from rich.table import Table

from cli.context import cli_errors, console, fail, state

config_app = typer.Typer(help="Show the effective configuration or an example env file.",
                         no_args_is_help=True)


@config_app.command("show")
@cli_errors
def config_show() -> None:
    """Print every setting's effective value and where it came from."""
    from appliance.settings import Settings, env_var

    loaded = state.loaded
    table = Table("setting", "value", "source", title="Ovation configuration")
    for name, _info in Settings.model_fields.items():
        value = getattr(loaded.settings, name)
        shown = "(set)" if name == "secret_key" and value else str(value)
        table.add_row(env_var(name), shown, loaded.sources[name])
    table.caption = (f"database: {loaded.settings.effective_database_url}   "
                     f"redis: {loaded.settings.effective_redis_url}")
    console.print(table)


@config_app.command("example")
@cli_errors
def config_example() -> None:
    """Print a documented env file with every setting commented out at its default."""
    from appliance.settings import render_env_example

    # Plain stdout, not rich: the text is meant for `> ovation.env`, byte for byte.
    typer.echo(render_env_example(), nl=False)


@cli_errors
def migrate() -> None:
    """Apply pending database migrations (safe to run any time)."""
    from appliance.connections import open_sql
    from appliance.storage.migrations import migrate as apply_migrations

    database = open_sql(state.settings, require_schema=False)
    applied = apply_migrations(database)
    if not applied:
        console.print("The database schema is up to date.")
    for version, name in applied:
        console.print(f"applied migration {version}: {name}")


@cli_errors
def flush(
    now: bool = typer.Option(False, "--now", help="Flush pending counters to SQL now."),
) -> None:
    """Move pending counter deltas from Redis to SQL (the flusher does it every few seconds)."""
    if not now:
        fail("say --now to flush immediately (the flusher process flushes on its own).", 2)
    from appliance.connections import open_redis, open_sql
    from appliance.jobs.flush import durability_wait, flush_once

    settings = state.settings
    client = open_redis(settings)
    report = flush_once(client, open_sql(settings), durability_wait_s=durability_wait(client))
    if report.batch_id is None:
        console.print("Nothing was pending.")
        return
    console.print(f"Flushed batch {report.batch_id}: {report.counters} counters, "
                  f"{report.interactions} interactions over {report.pages} pages in "
                  f"{report.duration_s * 1000:.1f} ms"
                  + (" (finished a batch left in flight)" if report.resumed else "") + ".")
