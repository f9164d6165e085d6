"""The lazily loaded configuration every command shares, and the CLI's error edge."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from appliance.errors import OvationError
from appliance.settings import LoadedSettings, Settings, load_settings

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    """Options given on the command line; None means "not given", so config files decide."""

    overrides: dict[str, Any] = field(default_factory=dict)
    _loaded: LoadedSettings | None = None

    def set(self, **values: Any) -> None:
        for name, value in values.items():
            if value is not None:
                self.overrides[name] = value
        self._loaded = None

    @property
    def loaded(self) -> LoadedSettings:
        if self._loaded is None:
            self._loaded = load_settings(self.overrides)
        return self._loaded

    @property
    def settings(self) -> Settings:
        return self.loaded.settings


state = CliState()


def data_dir_option() -> Any:
    return typer.Option(None, "--data-dir", help="Data directory of the instance "
                        "\\[env: OVATION_DATA_DIR; default: ~/.local/share/ovation].",
                        show_default=False, file_okay=False, resolve_path=True)


def print_error(message: str) -> None:
    """One line on stderr: `error: message` (soft_wrap keeps a long message on one line)."""
    err_console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)


def fail(message: str, exit_code: int = 1) -> None:
    print_error(message)
    raise typer.Exit(exit_code)


def cli_errors(function: F) -> F:
    """Turn domain errors into one line on stderr and a non-zero exit code, no traceback."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except OvationError as exc:
            fail(exc.message, exc.exit_code)
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def with_data_dir(data_dir: Path | None) -> None:
    """Start a fresh invocation: forget flags of any earlier one (tests run many in-process)."""
    state.overrides.clear()
    state.set(data_dir=data_dir)
