"""Thin, explicit wrappers around the host's tools (systemctl, journalctl, runuser)."""

from __future__ import annotations

import os
import shutil
import subprocess

from appliance.errors import OperationFailed, SystemdUnavailable
from appliance.operations.services import systemd_running

NOT_SYSTEMD = ("systemd is not running on this host (it is not PID 1), so there are no Ovation "
               "units to drive here: run everything in the foreground with `platformctl up`.")


def require_systemd(message: str = NOT_SYSTEMD) -> None:
    if not systemd_running() or not shutil.which("systemctl"):
        raise SystemdUnavailable(message)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise OperationFailed(f"{what} needs root: run it with sudo.")


def systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_command(["systemctl", *args], check=check)


def run_command(argv: list[str], check: bool = True, env: dict[str, str] | None = None,
                timeout_s: float = 600) -> subprocess.CompletedProcess:
    """Run a command; on failure raise OperationFailed with its last line of output."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, env=env,
                                timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise OperationFailed(f"{argv[0]} is not installed.") from None
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"`{' '.join(argv)}` did not finish in {timeout_s:.0f} s.") \
            from None
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        detail = output[-1] if output else f"exit code {result.returncode}"
        raise OperationFailed(f"`{' '.join(argv)}` failed: {detail}")
    return result
