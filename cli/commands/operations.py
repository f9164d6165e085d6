"""Registers the host-operations commands (issue 7) on `platformctl` in one place."""

from __future__ import annotations

import typer
from typer.completion import completion_init


def register_operations(app: typer.Typer, config_app: typer.Typer) -> None:
    from cli.commands.backup import backup, restore
    from cli.commands.completion import completion
    from cli.commands.doctor import config_check, doctor
    from cli.commands.install import install, uninstall
    from cli.commands.service import logs, restart, start, stop
    from cli.commands.status import status
    from cli.commands.transfer import export, import_comments

    # The app is built with add_completion=False (`platformctl completion SHELL` prints the
    # script instead of Typer's --install-completion), which also leaves Typer's shell classes
    # unregistered: without this, every TAB in a shell answers "Shell bash not supported."
    completion_init()
    for command in (install, uninstall, start, stop, restart, status, logs, doctor, backup,
                    restore, export, completion):
        app.command()(command)
    app.command("import")(import_comments)
    config_app.command("check")(config_check)
