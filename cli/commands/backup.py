"""`platformctl backup [--to FILE]` and `platformctl restore FILE`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from cli.context import cli_errors, console, err_console, state


@contextlib.contextmanager
def progress_bar(label: str, unit: str) -> Iterator:
    """A progress bar on stderr; yields the (done, total) callback the operations call."""
    columns = [TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    if unit == "bytes":
        columns.insert(2, DownloadColumn())
    else:
        columns.insert(2, TextColumn("{task.completed:.0f} " + unit))
    # Off when stderr is not a terminal: a transient bar still leaves an empty line behind,
    # which cron mails and which scripts read as output.
    with Progress(*columns, console=err_console, transient=True,
                  disable=not err_console.is_terminal) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


@cli_errors
def backup(
    to: Path = typer.Option(None, "--to", help="The backup file \\[default: "
                            "DATA_DIR/backups/ovation-DATE-TIME.db or .pgdump].",
                            show_default=False, dir_okay=False),
) -> None:
    """Back up the database, flushing pending counters first; safe while Ovation runs.

    SQLite is copied with its online backup API, PostgreSQL with pg_dump (custom format).
    """
    from appliance.operations.backup import backup as run_backup
    from appliance.operations.backup import default_backup_path, sqlite_path

    settings = state.settings
    target = to or default_backup_path(settings)
    unit = "pages" if sqlite_path(settings) else "bytes"
    with progress_bar("backing up", unit) as update:
        report = run_backup(settings, target, update)
    console.print(f"Backed up the {report.kind} database to {report.path} "
                  f"({report.size_bytes:,} bytes; {report.flushed}).", highlight=False,
                  soft_wrap=True)


@cli_errors
def restore(
    file: Path = typer.Argument(..., help="A file written by `platformctl backup`.",
                                exists=True, dir_okay=False, resolve_path=True),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Replace the database with a backup (stop Ovation first).

    The file is checked before anything is touched; on any error nothing is changed.
    """
    from appliance.operations.backup import backup_kind
    from appliance.operations.backup import restore as run_restore

    settings = state.settings
    backup_kind(file)  # refuse a wrong file before asking anything
    if not yes:
        typer.confirm(f"Replace the database {settings.effective_database_url} with {file}?",
                      abort=True, err=True)
    with progress_bar("restoring", "pages") as update:
        kind = run_restore(settings, file, update)
    console.print(f"Restored the {kind} database from {file}. Start Ovation again "
                  "(`platformctl start` or `platformctl up`).", highlight=False, soft_wrap=True)
