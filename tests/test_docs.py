"""Drift tests: the docs and the example env file fail the build when they fall behind the code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

import cli.main
from appliance.errors import ERROR_CODES
from appliance.settings import SETTING_NAMES, env_var, render_env_example

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def read(relative: str) -> str:
    return (REPO / relative).read_text()


def walk_commands(command: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Every command and subcommand of the `platformctl` tree, by its full invocation.

    Duck-typed: Typer vendors its own copy of click, so `click.Group` is not its group class.
    """
    yield prefix, command
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from walk_commands(sub, f"{prefix} {name}")


COMMANDS = dict(walk_commands(typer.main.get_command(cli.main.app), "platformctl"))


def test_env_example_is_generated_from_the_settings():
    assert read("packaging/ovation.env.example") == render_env_example(), (
        "packaging/ovation.env.example is stale: run "
        "`platformctl config example > packaging/ovation.env.example`")


def test_env_example_lists_every_setting_commented_out():
    text = render_env_example()
    for name in SETTING_NAMES:
        assert re.search(rf"^# {env_var(name)}=", text, re.MULTILINE), name
    assert not [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_every_setting_is_documented(name):
    assert env_var(name) in read("docs/configuration.md"), (
        f"{env_var(name)} is missing from docs/configuration.md")


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_error_code_is_documented(code):
    assert f"`{code}`" in read("docs/api.md"), f"error code {code} is missing from docs/api.md"


@pytest.mark.parametrize("invocation", sorted(COMMANDS))
def test_every_command_is_documented_with_help(invocation):
    command = COMMANDS[invocation]
    assert (command.help or "").strip(), f"`{invocation}` has no help text"
    heading = re.compile(rf"^#+ `{re.escape(invocation)}`", re.MULTILINE)
    assert heading.search(read("docs/cli.md")), (
        f"docs/cli.md has no section headed `{invocation}`")


@pytest.mark.parametrize("invocation", sorted(COMMANDS))
def test_every_option_is_documented(invocation):
    flags = [flag for param in COMMANDS[invocation].params
             for flag in (*param.opts, *param.secondary_opts) if flag.startswith("--")]
    text = read("docs/cli.md")
    missing = [flag for flag in flags if not re.search(rf"`{re.escape(flag)}[` ]", text)]
    assert not missing, f"`{invocation}` options missing from docs/cli.md: {missing}"


def test_command_walk_sees_the_subcommands():
    # Guards the walk itself: a Typer change that hid subgroups would pass the test above.
    assert {"platformctl config show", "platformctl site add"} <= set(COMMANDS)


def test_readme_shows_the_ci_test_command():
    ci_command = [line.strip() for line in read(".ci/run").splitlines()
                  if line.strip() and not line.startswith("#") and "install.sh" in line][-1]
    assert ci_command in read("README.md")
