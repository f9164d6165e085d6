"""platformctl commands: config, migrate, site, flush; errors are one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.conftest import REPO

runner = CliRunner()


@pytest.fixture
def env(tmp_path, redis_url, database_url) -> dict[str, str]:
    return {"OVATION_DATA_DIR": str(tmp_path / "data"), "OVATION_REDIS_URL": redis_url,
            "OVATION_DATABASE_URL": database_url, "OVATION_SECRET_KEY": "k", "COLUMNS": "200"}


def invoke(env: dict[str, str], *args: str):
    return runner.invoke(app, list(args), env=env)


def test_config_show_names_each_source(tmp_path, env):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ovation.env").write_text("OVATION_APPLAUSE_CAP=20\n")
    result = invoke(env, "--data-dir", str(tmp_path / "data"), "config", "show")
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines()
             if line.count("│") >= 3}
    assert "20" in lines["OVATION_APPLAUSE_CAP"] and "env file" in lines["OVATION_APPLAUSE_CAP"]
    assert "environment" in lines["OVATION_REDIS_URL"]
    assert "command line" in lines["OVATION_DATA_DIR"]
    assert "default" in lines["OVATION_FLUSH_INTERVAL_S"]
    assert "(set)" in lines["OVATION_SECRET_KEY"]  # secrets are not printed


def test_a_bad_setting_stops_with_one_clear_line(env):
    result = subprocess.run([sys.executable, "-m", "cli", "config", "show"], cwd=REPO,
                            env={**env, "OVATION_FLUSH_INTERVAL_S": "soon", "PATH": "/usr/bin"},
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "OVATION_FLUSH_INTERVAL_S='soon' (environment)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_migrate_then_sites(env):
    assert "applied migration 1" in invoke(env, "migrate").output
    assert "up to date" in invoke(env, "migrate").output
    added = invoke(env, "site", "add", "myblog", "--origin", "https://Blog.Example:443/",
                   "--title", "My blog")
    assert added.exit_code == 0, added.output
    assert "https://blog.example" in added.output
    duplicate = invoke(env, "site", "add", "myblog")
    assert duplicate.exit_code == 1 and "exists already" in duplicate.output
    changed = invoke(env, "site", "set", "myblog", "--origin", "http://localhost:1313",
                     "--remove-origin", "https://blog.example", "--published-only")
    assert changed.exit_code == 0, changed.output
    listed = invoke(env, "site", "list")
    assert "myblog" in listed.output and "http://localhost:1313" in listed.output
    assert "published only" in listed.output and "https://blog.example" not in listed.output


@pytest.mark.parametrize(("args", "message"), [
    (("site", "add", "Bad Name!"), "Site name"),
    (("site", "add", "ok", "--origin", "blog.example"), "must look like https://"),
    (("site", "add", "ok", "--origin", "https://blog.example/path"), "no path"),
    (("site", "set", "nosuchsite", "--title", "x"), "no site is named"),
])
def test_bad_site_input_is_one_line_and_nonzero(env, args, message):
    invoke(env, "migrate")
    result = invoke(env, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_commands_before_migrate_say_what_to_do(env):
    result = invoke(env, "site", "list")
    assert result.exit_code == 3 and "platformctl migrate" in result.output


def test_flush_now(env):
    invoke(env, "migrate")
    assert "Nothing was pending" in invoke(env, "flush", "--now").output


def test_flush_without_redis_is_a_clear_error(env, tmp_path):
    invoke(env, "migrate")
    env = {**env, "OVATION_REDIS_URL": f"unix://{tmp_path}/nothing.sock"}
    result = invoke(env, "flush", "--now")
    assert result.exit_code == 3 and "Redis is not reachable" in result.output


def test_owned_redis_hint_when_up_is_not_running(env, tmp_path):
    env = {key: value for key, value in env.items() if key != "OVATION_REDIS_URL"}
    invoke(env, "migrate")
    result = invoke(env, "flush", "--now")
    assert result.exit_code == 3 and "platformctl up" in result.output


def test_every_command_has_help():
    for args in [[], ["up"], ["serve"], ["migrate"], ["flush"], ["config", "show"],
                 ["site", "add"], ["site", "list"], ["site", "set"], ["version"]]:
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
