"""A private redis-server that Ovation starts and owns: Unix socket only, AOF every second."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from appliance.errors import ConfigError, ServiceUnavailable


def redis_command(directory: Path, binary: str | None = None) -> list[str]:
    """`binary` is fixed by the systemd units; otherwise the one on PATH."""
    binary = binary or shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise ConfigError("redis-server is not installed; run ./install.sh (or apt-get install "
                          "redis-server), or set OVATION_REDIS_URL to an existing Redis.")
    return [
        binary, "--port", "0", "--unixsocket", str(directory / "redis.sock"),
        "--unixsocketperm", "700", "--dir", str(directory),
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
        "--daemonize", "no", "--logfile", str(directory / "redis.log"),
        "--maxmemory-policy", "noeviction",  # evicting a pending delta would lose interactions
    ]


def socket_answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (redis.exceptions.RedisError, OSError):
        return False


def wait_for_socket(socket_path: Path, process: subprocess.Popen | None,
                    timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if socket_answers(socket_path):
            return
        if process is not None and process.poll() is not None:
            log = socket_path.parent / "redis.log"
            tail = log.read_text()[-500:] if log.exists() else ""
            raise ServiceUnavailable(f"redis-server exited with {process.returncode}: {tail}")
        time.sleep(0.02)
    raise ServiceUnavailable(f"redis-server did not answer on {socket_path} "
                             f"within {timeout_s:.0f} s")


def prepare_directory(directory: Path) -> None:
    """Create the Redis directory and clear a stale socket; refuse if a Redis answers there."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    socket_path = directory / "redis.sock"
    if socket_answers(socket_path):
        raise ConfigError(f"A Redis already answers on {socket_path}: is another "
                          f"`platformctl up` using this data directory?")
    socket_path.unlink(missing_ok=True)
