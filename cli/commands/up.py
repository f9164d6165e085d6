"""`platformctl up`: run all of Ovation in the foreground."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.context import cli_errors, console, data_dir_option, state


@cli_errors
def up(
    data_dir: Path = data_dir_option(),
    port: int = typer.Option(None, "--port", min=1, max=65535, help="Port for the web "
                             "process \\[default: 8700].", show_default=False),
    host: str = typer.Option(None, "--host", help="Address to listen on \\[default: "
                             "127.0.0.1].", show_default=False),
    workers: int = typer.Option(None, "--workers", min=1, max=64,
                                help="Web worker processes \\[default: 1].", show_default=False),
) -> None:
    """Run web, flusher, listener, notifier and a private Redis in the foreground.

    Data (SQLite database, Redis files) lives in the data directory; the next `up` with the
    same directory carries on with the same totals. Ctrl-C stops everything cleanly.
    """
    from appliance.logging_setup import configure_logging
    from appliance.supervision.up import run_up

    state.set(data_dir=data_dir, web_workers=workers)
    if port is not None or host is not None:
        current = state.settings
        state.set(bind=f"{host or current.bind_host}:{port or current.bind_port}")
    settings = state.settings
    configure_logging(settings.log_level, "up")
    run_up(settings, lambda message: console.print(message, style="bold", highlight=False,
                                                   soft_wrap=True, markup=False))
