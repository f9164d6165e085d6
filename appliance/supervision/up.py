"""`platformctl up`: everything in the foreground from one command, for a first try.

Starts the owned Redis (unless OVATION_REDIS_URL names one), migrates the database, makes the
demo site, then runs `platformctl serve flusher|listener|notifier|web` as supervised children
(the very commands the systemd units run), and on Ctrl-C stops them in an order that loses
nothing.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from appliance.connections import open_sql
from appliance.errors import ConfigError, ServiceUnavailable
from appliance.services.sites import DEMO_SITE, ensure_site
from appliance.settings import Settings, env_var
from appliance.storage.migrations import migrate
from appliance.supervision import owned_redis
from appliance.supervision.supervisor import ProcessSpec, Supervisor

log = logging.getLogger("ovation.up")
PROCESS_NAMES = ("flusher", "listener", "notifier", "web")
STATE_FILE = "up.json"


def child_environment(settings: Settings) -> dict[str, str]:
    """Every effective setting as OVATION_* variables, so children see exactly what `up` saw."""
    return {env_var(name): str(getattr(settings, name)) for name in type(settings).model_fields}


def build_specs(settings: Settings) -> list[ProcessSpec]:
    env = child_environment(settings)
    specs: list[ProcessSpec] = []
    if settings.owns_redis:
        owned_redis.prepare_directory(settings.redis_dir)
        specs.append(ProcessSpec(
            "redis", owned_redis.redis_command(settings.redis_dir), stop_timeout_s=30,
            ready=lambda process: owned_redis.wait_for_socket(settings.redis_socket, process)))
    for name in PROCESS_NAMES:
        specs.append(ProcessSpec(
            name, [sys.executable, "-m", "cli", "serve", name], env=env,
            # the flusher's last flush may wait out a slow database
            stop_timeout_s=60 if name == "flusher" else 20))
    return specs


def require_free_port(host: str, port: int) -> None:
    """Refuse to start when the port is taken: the readiness check would otherwise find
    whatever else answers there and call Ovation up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host or "0.0.0.0", port))
        except OSError as exc:
            raise ConfigError(f"Port {port} on {host or 'all addresses'} is in use ({exc.strerror}"
                              "); pick another with --port.") from None


def wait_until_ready(url: str, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def run_up(settings: Settings, announce: Callable[[str], None]) -> None:
    """Run until SIGINT/SIGTERM; returns after everything has stopped."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    require_free_port(settings.bind_host, settings.bind_port)
    settings.hashing_key()  # create the key once, before several children race to
    specs = build_specs(settings)
    host = settings.bind_host if settings.bind_host not in ("0.0.0.0", "::", "") \
        else "127.0.0.1"
    local_url = f"http://{'[' + host + ']' if ':' in host else host}:{settings.bind_port}"
    # The address goes into the state file too: `platformctl dashboard` probes the web there,
    # as --port and --host given to `up` are not in any setting another command reads.
    supervisor = Supervisor(specs, settings.data_dir / STATE_FILE,
                            state_extra={"web_url": local_url})

    def stop(signum, _frame) -> None:
        if supervisor.stop_event.is_set():
            return
        announce("Stopping (a final flush keeps every interaction)...")
        supervisor.stop_event.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if settings.owns_redis:
            # Redis first: migrations don't need it, but every child does.
            supervisor.start_some(["redis"])
        database = open_sql(settings, require_schema=False)
        for version, name in migrate(database):
            announce(f"Applied migration {version}: {name}")
        # The demo shows every bundled kind; a type left out by OVATION_PLUGINS is skipped.
        ensure_site(database, DEMO_SITE, [settings.effective_public_url], "Ovation demo",
                    reactions=("view", "like", "applause", "emoji", "stars"))
        database.close()
        supervisor.start_some(list(PROCESS_NAMES))
        url = settings.effective_public_url
        if not wait_until_ready(local_url) and not supervisor.stop_event.is_set():
            raise ServiceUnavailable(f"The web process did not become ready at {url}; "
                                     "see the log above.")
        if not supervisor.stop_event.is_set():
            announce(f"Ovation is up. Demo page: {url}/demo   API docs: {url}/docs   "
                     f"Data: {settings.data_dir}   Ctrl-C stops.")
        supervisor.watch()
    finally:
        supervisor.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    announce("Ovation stopped.")


def read_state(data_dir: Path) -> dict | None:
    """The running `up` instance's process ids, if one is running in `data_dir`."""
    import json

    path = data_dir / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
