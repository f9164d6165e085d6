"""The `platformctl` command: one Typer app, one module per command group."""

from __future__ import annotations

from pathlib import Path

import typer

from appliance import __version__
from cli.commands.admin import config_app, flush, migrate
from cli.commands.comments import comments_app
from cli.commands.dashboard import dashboard
from cli.commands.notifications import notifications_app
from cli.commands.operations import register_operations
from cli.commands.plugins import plugins_app
from cli.commands.privacy import visitor_app
from cli.commands.publishing import feeds_app, publish
from cli.commands.serve import serve
from cli.commands.sites import site_app
from cli.commands.tokens import token_app
from cli.commands.up import up
from cli.commands.webhooks import webhook_app
from cli.context import console, data_dir_option, with_data_dir
from cli.usage_errors import OneLineErrorsGroup

app = typer.Typer(
    name="platformctl",
    cls=OneLineErrorsGroup,  # usage errors as one line, for every command
    help="Ovation: views, likes, applause and comments for any web page, live.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(data_dir: Path = data_dir_option()) -> None:
    """Every command finds its instance through --data-dir (or OVATION_DATA_DIR)."""
    with_data_dir(data_dir)


@app.command()
def version() -> None:
    """Print Ovation's version."""
    console.print(f"ovation {__version__}")


app.command()(up)
app.command()(serve)
app.command()(migrate)
app.command()(flush)
app.add_typer(config_app, name="config")
app.add_typer(site_app, name="site")
app.add_typer(plugins_app, name="plugins")
app.command()(publish)
app.add_typer(token_app, name="token")
app.add_typer(feeds_app, name="feeds")
app.add_typer(comments_app, name="comments")
app.add_typer(notifications_app, name="notifications")
app.add_typer(webhook_app, name="webhook")
app.add_typer(visitor_app, name="visitor")
app.command()(dashboard)
register_operations(app, config_app)


def main() -> None:
    app()
