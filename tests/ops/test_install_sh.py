"""install.sh --system: its dry run prints every step, changes nothing, and never prints a
secret. (Tests never install system-wide; the file steps are proven by `install --root`.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import REPO


def dry_run(*args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OVATION_")}
    return subprocess.run(["./install.sh", "--system", "--dry-run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


SYSTEMD_RUNNING = Path("/run/systemd/system").is_dir()  # what install.sh checks


def test_system_dry_run_prints_the_plan_for_this_host_and_changes_nothing():
    before = {path: path.exists() for path in (Path("/opt/ovation"), Path("/etc/ovation"),
                                               Path("/var/lib/ovation"),
                                               Path("/usr/local/bin/platformctl"))}
    result = dry_run("--workers", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    if subprocess.run(["id", "-u", "ovation"], capture_output=True).returncode != 0:
        assert "would run: useradd --system" in out
    for expected in ("/opt/ovation/venv", "would write /usr/local/bin/platformctl",
                     "would write /etc/ovation/ovation.env (root:ovation, 0640",
                     "would run `/opt/ovation/venv/bin/platformctl migrate` as ovation"):
        assert expected in out, expected
    if SYSTEMD_RUNNING:
        for expected in ("would write /etc/systemd/system/ovation-web.service",
                         "would systemctl restart ovation.target"):
            assert expected in out, expected
    else:
        # What the real run does here: everything but the units, then how to run Ovation.
        assert "platformctl install --no-units" in out
        assert "ovation-web.service" not in out and "systemctl" not in out
        last = out.strip().splitlines()[-1]
        assert "systemd is not running on this host" in last
        assert "runuser -u ovation -- /usr/local/bin/platformctl up" in last
    assert {path: path.exists() for path in before} == before


def test_system_dry_run_is_repeatable_and_keeps_passwords_off_screen():
    first, second = dry_run("--postgres"), dry_run("--postgres")
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    assert "PASSWORD (generated)" in first.stdout or "would create the PostgreSQL role" in \
        first.stdout
    assert "postgresql://ovation:" not in first.stdout + first.stderr
    strip = [line for line in first.stdout.splitlines() if "ovation-source-" not in line]
    assert strip == [line for line in second.stdout.splitlines()
                     if "ovation-source-" not in line]


def test_unknown_mode_explains_itself():
    result = subprocess.run(["./install.sh"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "--system" in result.stderr


def test_bench_dry_run_installs_wrk_where_missing_then_runs_every_benchmark(tmp_path):
    """`./install.sh --bench`, the README's one command for the benchmarks: on a machine
    without `wrk` it plans to install Debian's, then hands its arguments to `python -m bench`.
    The PATH is this machine's without `wrk`, and a `dpkg-query` that knows no package."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for tool in Path(directory).glob("*") if Path(directory).is_dir() else ():
            target = bin_dir / tool.name
            if tool.name not in ("wrk", "dpkg-query") and not target.exists():
                target.symlink_to(tool)
    fake = bin_dir / "dpkg-query"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    env = {**{key: value for key, value in os.environ.items()
              if not key.startswith("OVATION_")}, "PATH": str(bin_dir)}
    result = subprocess.run(["./install.sh", "--bench", "--dry-run", "--quick"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    installs = [line for line in result.stdout.splitlines() if "apt-get install" in line]
    assert installs and "wrk" in installs[-1].split(), result.stdout
    assert "would run: .venv/bin/python -m bench --quick" in result.stdout, result.stdout
