"""The systemd units: `systemd/` is exactly what `install` renders, every unit passes
`systemd-analyze verify` with no output, and install/uninstall into a temporary root."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from appliance.operations.units import Layout, render_units
from tests.conftest import REPO

SYSTEMD = REPO / "systemd"


def test_systemd_folder_holds_exactly_the_rendered_units():
    rendered = render_units(Layout())
    assert sorted(path.name for path in SYSTEMD.iterdir()) == sorted(rendered)
    for name, text in rendered.items():
        assert (SYSTEMD / name).read_text() == text, (
            f"systemd/{name} is stale: regenerate it from appliance/operations/units.py")


@pytest.fixture
def verify_root(tmp_path) -> Path:
    """A file-system root in which `systemd-analyze verify` finds systemd's own units and the
    programs the units run (it checks that ExecStart's binary exists)."""
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing: apt-get install systemd")
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "lib").symlink_to("usr/lib")
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy("/usr/bin/redis-server", root / "usr/bin/redis-server")
    platformctl = root / "opt/ovation/venv/bin/platformctl"
    platformctl.parent.mkdir(parents=True)
    platformctl.write_text("#!/bin/sh\n")
    platformctl.chmod(0o755)
    return root


def verify(root: Path, unit: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", f"--root={root}", unit],
                          capture_output=True, text=True)


def install_into(platformctl, root: Path, *args: str):
    return platformctl("install", "--root", str(root), "--venv", "/opt/ovation/venv", *args)


def test_install_renders_the_units_and_each_verifies_cleanly(platformctl, verify_root):
    result = install_into(platformctl, verify_root)
    assert result.exit_code == 0, result.output
    unit_dir = verify_root / "etc/systemd/system"
    for path in SYSTEMD.iterdir():
        assert (unit_dir / path.name).read_text() == path.read_text()
        check = verify(verify_root, path.name)
        assert check.returncode == 0 and check.stdout + check.stderr == "", (
            f"{path.name}: {check.stdout}{check.stderr}")


def test_unit_hardening_and_kill_mode():
    units = render_units(Layout())
    web = units["ovation-web.service"]
    for line in ("KillMode=mixed", "User=ovation", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ReadWritePaths=/var/lib/ovation", "PrivateTmp=yes", "ProtectHome=yes",
                 "Restart=always", "PartOf=ovation.target",
                 "ExecStart=/opt/ovation/venv/bin/platformctl serve web"):
        assert line in web.splitlines(), line
    assert "KillMode=mixed" not in units["ovation-flusher.service"]
    assert "Requires=ovation-redis.service" in units["ovation-flusher.service"]
    assert "Wants=ovation-redis.service ovation-flusher.service" in units["ovation.target"]


def test_variants_verify_too(platformctl, verify_root):
    """An existing Redis (no ovation-redis unit) and a privileged port."""
    result = install_into(platformctl, verify_root, "--redis", "redis://127.0.0.1:6379/0",
                          "--bind", "0.0.0.0:80", "--workers", "4")
    assert result.exit_code == 0, result.output
    unit_dir = verify_root / "etc/systemd/system"
    assert not (unit_dir / "ovation-redis.service").exists()
    web = (unit_dir / "ovation-web.service").read_text()
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in web
    assert "ovation-redis" not in (unit_dir / "ovation.target").read_text()
    for path in unit_dir.iterdir():
        check = verify(verify_root, path.name)
        assert check.returncode == 0 and check.stdout + check.stderr == "", check.stderr
    env = (verify_root / "etc/ovation/ovation.env").read_text()
    assert "OVATION_WEB_WORKERS=4\n" in env and "OVATION_BIND=0.0.0.0:80\n" in env


def test_install_is_idempotent_and_keeps_the_secret(platformctl, tmp_path):
    root = tmp_path / "root"
    first = install_into(platformctl, root, "--workers", "2")
    assert first.exit_code == 0, first.output
    env_file = root / "etc/ovation/ovation.env"
    before = env_file.read_text()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640
    assert "OVATION_SECRET_KEY=" in before and "OVATION_DATA_DIR=/var/lib/ovation" in before
    again = install_into(platformctl, root)
    assert again.exit_code == 0 and "Nothing to do" in again.output
    assert env_file.read_text() == before  # options not given keep what is configured
    changed = install_into(platformctl, root, "--workers", "3")
    assert "write" in changed.output and "ovation.env" in changed.output
    assert "service" not in changed.output  # the units do not depend on the workers


def test_install_dry_run_changes_nothing(platformctl, tmp_path):
    root = tmp_path / "root"
    result = platformctl("install", "--root", str(root), "--dry-run")
    assert result.exit_code == 0
    assert "would write" in result.output and "ovation-web.service" in result.output
    assert not root.exists()


def test_bad_install_option_stops_before_writing(platformctl, tmp_path):
    root = tmp_path / "root"
    result = install_into(platformctl, root, "--bind", "nonsense")
    assert result.exit_code == 2 and "OVATION_BIND" in result.output
    assert not root.exists()


def test_uninstall_keeps_data_unless_purge(platformctl, tmp_path):
    root = tmp_path / "root"
    assert install_into(platformctl, root).exit_code == 0
    (root / "var/lib/ovation/ovation.db").write_text("data")
    result = platformctl("uninstall", "--root", str(root))
    assert result.exit_code == 0, result.output
    assert not list((root / "etc/systemd/system").iterdir())
    assert (root / "var/lib/ovation/ovation.db").exists() and (root / "etc/ovation").exists()
    purge = platformctl("uninstall", "--root", str(root), "--purge")
    assert purge.exit_code == 0
    assert not (root / "var/lib/ovation").exists() and not (root / "etc/ovation").exists()
