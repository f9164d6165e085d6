"""`platformctl completion SHELL`: print the shell's completion script for `platformctl`."""

from __future__ import annotations

import enum

import typer

from cli.context import cli_errors


class Shell(enum.StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


@cli_errors
def completion(shell: Shell = typer.Argument(..., help="bash, zsh or fish.")) -> None:
    """Print the shell completion script for platformctl (bash, zsh or fish).

    For example: `platformctl completion bash > /etc/bash_completion.d/platformctl`.
    """
    from typer._completion_shared import get_completion_script

    typer.echo(get_completion_script(prog_name="platformctl",
                                     complete_var="_PLATFORMCTL_COMPLETE", shell=shell.value))
