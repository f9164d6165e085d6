"""`platformctl doctor`: find what stops Ovation from working here and say what to do.

Each check returns findings (ok, info, warn, fail) with a sentence a tired operator can act
on. Checks never change anything.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from appliance.operations.health import Health, appliance_health
from appliance.operations.install import DEFAULT_ENV_FILE, UNIT_DIR, layout_for
from appliance.operations.services import (
    TARGET,
    ServiceState,
    read_up_state,
    service_states,
    systemd_running,
)
from appliance.settings import ENV_FILE_VARIABLE, Settings

OK, INFO, WARN, FAIL = "ok", "info", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    level: str
    check: str
    message: str


def diagnose(settings: Settings, unit_dir: Path = UNIT_DIR) -> list[Finding]:
    states = service_states(settings)
    health = appliance_health(settings)
    findings = [Finding(OK, "config", "the configuration loads and every value is valid")]
    findings += check_env_file()
    findings += check_systemd(settings, unit_dir)
    findings += check_data_dir(settings)
    findings += check_redis_binary(settings)
    findings += check_port(settings, states)
    findings += check_backends(settings, health)
    findings += check_plugins(settings)
    return findings


def check_plugins(settings: Settings) -> list[Finding]:
    """Reaction plugins load in every process; one that fails is left out there, silently for
    readers, so say so here."""
    from appliance.errors import PluginError
    from appliance.plugin_registry import ReactionRegistry

    try:
        registry = ReactionRegistry.discover(settings)
    except PluginError as exc:
        return [Finding(FAIL, "plugins", exc.message)]
    findings = [Finding(FAIL, "plugins", f"{info.entry_point} ({info.package} {info.version}) "
                        f"fails to load: {info.error}; sites showing its type go without it")
                for info in registry.failed()]
    if not findings:
        findings.append(Finding(OK, "plugins", f"{len(registry.names())} reaction type(s) "
                                f"load: {', '.join(registry.names())}"))
    return findings


def check_env_file() -> list[Finding]:
    path = Path(os.environ.get(ENV_FILE_VARIABLE) or DEFAULT_ENV_FILE)
    if not path.is_file():
        return []
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o007:
        return [Finding(FAIL, "env file", f"{path} is readable by every user (mode "
                        f"{mode:04o}) and holds the secret key: chmod 0640 {path}")]
    return [Finding(OK, "env file", f"{path} is readable only by its owner and group "
                    f"({mode:04o})")]


def check_systemd(settings: Settings, unit_dir: Path) -> list[Finding]:
    if not systemd_running():
        return [Finding(INFO, "systemd", "systemd is not running here (not PID 1): the units "
                        "cannot run; `platformctl up` runs Ovation in the foreground")]
    target = unit_dir / TARGET
    if not target.exists():
        return [Finding(WARN, "units", "Ovation's systemd units are not installed: "
                        "`sudo platformctl install`")]
    return check_unit_drift(settings, unit_dir)


def check_unit_drift(settings: Settings, unit_dir: Path) -> list[Finding]:
    """Installed units that differ from what `platformctl install` would write now."""
    from appliance.operations.units import exec_start, render_units

    web = unit_dir / "ovation-web.service"
    if not web.exists():
        return [Finding(FAIL, "units", f"{web} is missing: `sudo platformctl install`")]
    venv = Path(exec_start(web.read_text())[0]).parent.parent
    env_file = Path(os.environ.get(ENV_FILE_VARIABLE) or DEFAULT_ENV_FILE)
    expected = render_units(layout_for(settings, venv, env_file))
    drifted = [name for name, text in expected.items()
               if not (unit_dir / name).exists() or (unit_dir / name).read_text() != text]
    if drifted:
        return [Finding(WARN, "units", f"{', '.join(drifted)} differ from what the "
                        "configuration needs (edited by hand, or the configuration changed): "
                        "`sudo platformctl install` rewrites them")]
    return [Finding(OK, "units", "the installed units match the configuration")]


def check_data_dir(settings: Settings) -> list[Finding]:
    directory = settings.data_dir
    if not directory.exists():
        return [Finding(WARN, "data dir", f"{directory} does not exist yet (`platformctl up` "
                        "or `platformctl install` creates it)")]
    if not os.access(directory, os.W_OK | os.X_OK):
        return [Finding(FAIL, "data dir", f"{directory} is not writable by this user")]
    return [Finding(OK, "data dir", f"{directory} exists and is writable")]


def check_redis_binary(settings: Settings) -> list[Finding]:
    if settings.owns_redis and not shutil.which("redis-server") \
            and not Path("/usr/bin/redis-server").exists():
        return [Finding(FAIL, "redis-server", "Ovation owns its Redis but redis-server is not "
                        "installed: `apt-get install redis-server`")]
    return []


def check_port(settings: Settings, states: list[ServiceState]) -> list[Finding]:
    web = next((service for service in states if service.name == "web"), None)
    if web is not None and web.running:
        if web.source == "up":
            # `up --port/--host` are flags, in no setting: only up's state file knows them.
            state = read_up_state(settings.data_dir) or {}
            where = state.get("web_url") or "the address `platformctl up` was given"
            return [Finding(OK, "port", f"web runs under `platformctl up` at {where}")]
        return [Finding(OK, "port", f"web is running and listening on {settings.bind}")]
    family = socket.AF_INET6 if ":" in settings.bind_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.bind_host, settings.bind_port))
        except PermissionError:
            return [Finding(FAIL, "port", f"port {settings.bind_port} needs privileges to "
                            "bind: choose one above 1024 and proxy to it")]
        except OSError as exc:
            return [Finding(FAIL, "port", f"{settings.bind} is not available to web: "
                            f"{exc.strerror} (another program listens there; change "
                            "OVATION_BIND)")]
    return [Finding(OK, "port", f"{settings.bind} is free for web")]


def check_backends(settings: Settings, health: Health) -> list[Finding]:
    findings = []
    if health.redis_ok:
        findings.append(Finding(OK, "redis", f"Redis answers at {settings.effective_redis_url}"))
    else:
        hint = (" (the owned Redis runs only while Ovation runs)" if settings.owns_redis
                else "")
        findings.append(Finding(FAIL, "redis", f"Redis does not answer at "
                                f"{settings.effective_redis_url}: {health.redis_error}{hint}"))
    if not health.database_ok:
        findings.append(Finding(FAIL, "database", f"the database is not reachable: "
                                f"{health.database_error}"))
    elif health.pending_migrations:
        findings.append(Finding(FAIL, "migrations", f"{health.pending_migrations} migration(s) "
                                "pending: `platformctl migrate`"))
    else:
        findings.append(Finding(OK, "database", "the database answers and its schema is "
                                "current"))
    if sum(health.dead_letters.values()):
        findings.append(Finding(WARN, "dead letters", f"{sum(health.dead_letters.values())} "
                                "message(s) failed repeatedly and were set aside: "
                                f"{health.dead_letters}"))
    stale_after = settings.flush_interval_s * 3 + 30
    if health.pending_counters and (health.last_flush_age_s is None
                                    or health.last_flush_age_s > stale_after):
        findings.append(Finding(WARN, "flusher", f"{health.pending_counters} counter(s) wait "
                                "in Redis and no flush succeeded lately: is the flusher "
                                "running? " + (health.last_flush_error or "")))
    return findings
