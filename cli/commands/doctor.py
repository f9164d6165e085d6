"""`platformctl doctor` and `platformctl config check`."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from cli.context import cli_errors, console, state

_STYLES = {"ok": "green", "info": "cyan", "warn": "yellow", "fail": "bold red"}


@cli_errors
def doctor() -> None:
    """Find and explain problems (config, ports, Redis, database, migrations, units).

    Checks the configuration, the env file's permissions, the data directory, the web port,
    Redis and database reachability, pending migrations, drift of the installed systemd units
    from the configuration, and whether systemd runs at all. Exits with 1 when something fails.
    """
    from appliance.errors import ConfigError
    from appliance.operations.doctor import FAIL, diagnose

    try:
        settings = state.settings
    except ConfigError as exc:
        console.print(Text.assemble(("fail ", "bold red"), f"config: {exc.message}"))
        raise typer.Exit(1) from None
    findings = diagnose(settings)
    table = Table("", "check", "finding", show_header=False, box=None)
    for finding in findings:
        table.add_row(Text(finding.level, style=_STYLES[finding.level]), finding.check,
                      finding.message)
    console.print(table)
    failed = [finding for finding in findings if finding.level == FAIL]
    if failed:
        console.print(f"{len(failed)} problem(s) found.")
        raise typer.Exit(1)
    console.print("No problems found.")


@cli_errors
def config_check() -> None:
    """Check that the configuration loads and every value is valid (exit 2 if not)."""
    settings = state.settings  # raises ConfigError (exit 2) with the offending setting
    console.print(f"The configuration is valid (data directory {settings.data_dir}, database "
                  f"{settings.effective_database_url}, redis {settings.effective_redis_url}).",
                  highlight=False, soft_wrap=True)
