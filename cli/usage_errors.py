"""Usage errors (a bad option value, a missing argument, an unknown option or command) as one
line on stderr and exit code 2, for every command, instead of Typer's boxed panel.

The root group catches them once: every subcommand is parsed and run inside the root group's
`make_context` and `invoke`, so no command needs to know about this.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperGroup

try:  # Typer 0.2x carries its own copy of Click; older releases use Click itself.
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as click_errors  # type: ignore[no-redef]

from cli.context import print_error


def one_line(error: Any) -> str:
    """The error's message on one line; for a usage error, where to read the command's help."""
    message = re.sub(r"\s*\n\s*", " ", error.format_message().strip())
    context = getattr(error, "ctx", None)
    if isinstance(error, click_errors.UsageError) and context is not None \
            and context.command.get_help_option(context) is not None:
        message += f" (see '{context.command_path} {context.help_option_names[0]}')"
    return message


@contextmanager
def click_errors_in_one_line(resilient_parsing: bool) -> Iterator[None]:
    try:
        yield
    except click_errors.NoArgsIsHelpError:
        raise  # the help is printed already; Typer exits with 2 and adds nothing
    except click_errors.ClickException as error:
        if resilient_parsing:  # shell completion parses half-typed lines: stay quiet
            raise
        print_error(one_line(error))
        raise typer.Exit(error.exit_code) from None


class OneLineErrorsGroup(TyperGroup):
    """`platformctl`'s root group: Click's errors, from any subcommand, in one line."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: Any = None, **extra: Any) -> Any:
        with click_errors_in_one_line(bool(extra.get("resilient_parsing"))):
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with click_errors_in_one_line(ctx.resilient_parsing):
            return super().invoke(ctx)
