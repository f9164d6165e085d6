"""Registers the host-operations commands (issue 7) on `platformctl` in one place."""

from __future__ import annotations

import typer


def register_operations(app: typer.Typer, config_app: typer.Typer) -> None:
    from cli.commands.backup import backup, restore
    from cli.commands.completion import completion
    from cli.commands.doctor import config_check, doctor
    from cli.commands.install import install, uninstall
    from cli.commands.service import logs, restart, start, stop
    from cli.commands.status import status
    from cli.commands.transfer import export, import_comments

    for command in (install, uninstall, start, stop, restart, status, logs, doctor, backup,
                    restore, export, completion):
        app.command()(command)
    app.command("import")(import_comments)
    config_app.command("check")(config_check)
