"""`platformctl install --no-units`, what `install.sh --system` runs where systemd is not PID 1:
the env file (with the secrets), the data directory and the migrations, but no units. Proven
in a temporary root (tests never install system-wide), and with the /usr/local/bin/platformctl
wrapper that install.sh writes, run for real against the env file it points at."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import cli.main
from tests.conftest import REPO

SYSTEMD_RUNNING = Path("/run/systemd/system").is_dir()
# Nothing from the test process's own configuration may reach the install.
CLEAN_ENV = {key: None for key in os.environ
             if key.startswith("OVATION_") or key == "PLATFORMCTL_DATABASE_URL"}


def install(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli.main.app, ["install", *args],
                              env={**CLEAN_ENV, **(env or {})})


def no_units_into(root: Path, *args: str, env: dict[str, str] | None = None):
    return install("--no-units", "--root", str(root), "--venv", "/opt/ovation/venv", *args,
                   env=env)


def test_no_units_writes_the_config_and_data_directory_but_no_units(tmp_path):
    root = tmp_path / "root"
    result = no_units_into(root, "--workers", "2")
    assert result.exit_code == 0, result.output
    env_file = root / "etc/ovation/ovation.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "etc/ovation").stat().st_mode) == 0o750
    text = env_file.read_text()
    for line in ("OVATION_DATA_DIR=/var/lib/ovation\n", "OVATION_REDIS_URL=owned\n",
                 "OVATION_WEB_WORKERS=2\n"):
        assert line in text, line
    assert len(next(line for line in text.splitlines()
                    if line.startswith("OVATION_SECRET_KEY="))) > len("OVATION_SECRET_KEY=") + 32
    assert stat.S_IMODE((root / "var/lib/ovation").stat().st_mode) == 0o750
    assert stat.S_IMODE((root / "var/lib/ovation/redis").stat().st_mode) == 0o700
    assert not (root / "etc/systemd").exists()
    assert "systemctl" not in result.output and ".service" not in result.output
    assert result.output.strip().splitlines()[-1].startswith(
        f"Ovation is configured under {root}, without systemd units. Run it in the foreground "
        "as ovation: runuser -u ovation -- env OVATION_ENV_FILE=/etc/ovation/ovation.env "
        "/opt/ovation/venv/bin/platformctl up")


def test_no_units_twice_changes_nothing(tmp_path):
    root = tmp_path / "root"
    assert no_units_into(root).exit_code == 0
    files = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
    again = no_units_into(root)
    assert again.exit_code == 0 and again.output.strip() == \
        "Nothing to do: everything is in place already."
    assert {path: path.read_bytes() for path in root.rglob("*") if path.is_file()} == files


def test_the_database_password_is_saved_in_the_env_file_and_never_printed(tmp_path):
    """install.sh --postgres hands the generated role password over in the environment."""
    root = tmp_path / "root"
    url = "postgresql://ovation:s3cret-generated@127.0.0.1:5432/ovation"
    result = no_units_into(root, env={"PLATFORMCTL_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert f"OVATION_DATABASE_URL={url}\n" in (root / "etc/ovation/ovation.env").read_text()
    assert "s3cret-generated" not in result.output


def wrapper_for(env_file: Path, where: Path) -> Path:
    """The /usr/local/bin/platformctl that install.sh writes, for this env file and the venv
    running the tests, rendered by the very function install.sh uses."""
    text = subprocess.run(
        ["bash", "-c", '. packaging/platformctl-wrapper.sh && platformctl_wrapper "$1" "$2"',
         "wrapper", str(env_file), sys.prefix],
        cwd=REPO, check=True, capture_output=True, text=True).stdout
    wrapper = where / "platformctl"
    wrapper.write_text(text)
    wrapper.chmod(0o755)
    return wrapper


def test_the_wrapper_finds_the_env_file_that_no_units_writes(tmp_path):
    root = tmp_path / "root"
    env_file = root / "etc/ovation/ovation.env"
    wrapper = wrapper_for(env_file, tmp_path)
    env = {key: value for key, value in os.environ.items() if key not in CLEAN_ENV}

    # The state install.sh used to leave on a host without systemd: a wrapper, no env file.
    missing = subprocess.run([str(wrapper), "config", "check"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 2
    assert missing.stderr == f"error: OVATION_ENV_FILE={env_file}: no such file\n"

    assert no_units_into(root).exit_code == 0
    check = subprocess.run([str(wrapper), "config", "check"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("The configuration is valid (data directory "
                                   "/var/lib/ovation, database sqlite:////var/lib/ovation/"
                                   "ovation.db, redis unix:///var/lib/ovation/redis/redis.sock)")


def test_install_plans_for_the_host_it_runs_on():
    """A dry run shows what the real run would do: without systemd, refuse and point to
    --no-units; --no-units plans the migration and nothing of systemd, on any host."""
    result = install("--dry-run", "--venv", "/opt/ovation/venv")
    if SYSTEMD_RUNNING:
        assert result.exit_code == 0 and "systemctl restart ovation.target" in result.output
    else:
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1
        assert "systemd is not running" in result.stderr and "--no-units" in result.stderr

    planned = install("--dry-run", "--no-units", "--venv", "/opt/ovation/venv")
    assert planned.exit_code == 0, planned.output
    assert "would run `/opt/ovation/venv/bin/platformctl migrate` as ovation" in planned.output
    assert "systemctl" not in planned.output and ".service" not in planned.output
