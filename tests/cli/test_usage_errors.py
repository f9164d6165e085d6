"""Usage errors of every command are one line on stderr, `error: …` with where to find the
command's help, and exit code 2: no boxed panel, no usage block, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()

USAGE_ERRORS = [
    pytest.param(["up", "--port", "x"],
                 "error: Invalid value for '--port': ", "(see 'platformctl up --help')",
                 id="bad-value"),
    pytest.param(["site", "add"],
                 "error: Missing argument 'name'.", "(see 'platformctl site add --help')",
                 id="missing-argument"),
    pytest.param(["status", "--colour"],
                 "error: No such option: --colour", "(see 'platformctl status --help')",
                 id="unknown-option"),
    pytest.param(["frobnicate"],
                 "error: No such command 'frobnicate'.", "(see 'platformctl --help')",
                 id="unknown-command"),
    pytest.param(["config", "shwo"],
                 "error: No such command 'shwo'.", "(see 'platformctl config --help')",
                 id="unknown-subcommand"),
    # Click's parser does not say which command it was parsing: no help hint, still one line.
    pytest.param(["up", "--port"], "error: Option '--port' requires an argument.",
                 "requires an argument.", id="option-without-value"),
    pytest.param(["completion", "tcsh"],
                 "error: Invalid value for 'shell': ", "(see 'platformctl completion --help')",
                 id="bad-choice"),
]


@pytest.mark.parametrize(("args", "start", "end"), USAGE_ERRORS)
def test_usage_errors_are_one_line_with_exit_code_2(args, start, end):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(start) and lines[0].endswith(end), lines[0]


def test_a_usage_error_from_a_real_process_is_one_line():
    platformctl = Path(sys.prefix) / "bin" / "platformctl"  # the installed entry point
    env = {key: value for key, value in os.environ.items() if not key.startswith("OVATION_")}
    env["COLUMNS"] = "40"  # a narrow terminal must not wrap the line either
    result = subprocess.run([str(platformctl), "up", "--workers", "many"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: Invalid value for '--workers': ")
    assert result.stderr.endswith("(see 'platformctl up --help')\n")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_help_and_no_arguments_still_print_help():
    assert runner.invoke(app, ["up", "--help"]).exit_code == 0
    bare = runner.invoke(app, [])
    assert "Usage" in bare.stdout and "error:" not in bare.stderr
