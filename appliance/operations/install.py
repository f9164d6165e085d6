"""`platformctl install` and `uninstall` as a plan of steps, so `--dry-run` prints the very
steps a real run performs and `--root DIR` performs only the file steps under DIR. With
`--no-units` (hosts without systemd) the plan stops after the env file, the data directory and
the migrations: no units, no systemctl.

A system install keeps its configuration in /etc/ovation/ovation.env (mode 0640, root:ovation:
it holds the secret key and database passwords), its data in /var/lib/ovation (ovation:ovation,
0750) and its units in /etc/systemd/system. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import ConfigError
from appliance.operations import host
from appliance.operations.services import TARGET, unit_name
from appliance.operations.units import Layout, all_unit_names, render_units
from appliance.settings import (
    ENV_FILE_VARIABLE,
    OWNED_REDIS,
    Settings,
    env_var,
    load_settings,
    read_env_file,
    render_env_example,
)

DEFAULT_ENV_FILE = Path("/etc/ovation/ovation.env")
DEFAULT_DATA_DIR = Path("/var/lib/ovation")
UNIT_DIR = Path("/etc/systemd/system")
SERVICE_USER = "ovation"


@dataclass
class InstallOptions:
    """What `platformctl install` was asked; None keeps the value already configured."""

    workers: int | None = None
    bind: str | None = None
    database_url: str | None = None
    redis_url: str | None = None  # a URL or "owned"
    data_dir: Path | None = None
    venv: Path | None = None  # default: the environment running platformctl
    root: Path | None = None  # write files under this directory only; no systemctl, no chown
    start: bool = True
    # False where systemd does not run: configuration, data directory and migrations only,
    # for `platformctl up` to run as the service user with the same env file.
    units: bool = True
    dry_run: bool = False  # plan only: a missing venv is reported, not refused


@dataclass
class Step:
    description: str
    action: Callable[[], None]


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    settings: Settings | None = None
    layout: Layout | None = None

    def add(self, description: str, action: Callable[[], None]) -> None:
        self.steps.append(Step(description, action))


def under(root: Path | None, path: Path) -> Path:
    """`path` inside the alternative root, if there is one."""
    return root / path.relative_to("/") if root is not None else path


def env_file_values(options: InstallOptions, existing: dict[str, str]) -> dict[str, str]:
    """The settings an install pins in the env file: what was asked, else what is there."""
    values = dict(existing)
    values.setdefault(env_var("data_dir"), str(DEFAULT_DATA_DIR))
    if options.data_dir is not None:
        values[env_var("data_dir")] = str(options.data_dir)
    for name, value in (("web_workers", options.workers), ("bind", options.bind),
                        ("database_url", options.database_url),
                        ("redis_url", options.redis_url)):
        if value is not None:
            values[env_var(name)] = str(value)
    values.setdefault(env_var("redis_url"), OWNED_REDIS)
    # The secret key lives in the root-owned env file, never in a file root creates in the data
    # directory that the service user could not read.
    values.setdefault(env_var("secret_key"), secrets.token_hex(32))
    return values


def render_env_file(current_text: str | None, values: dict[str, str]) -> str:
    """Set `values` in the env file text (the documented example when there is none yet),
    replacing each setting's line or its commented-out default in place."""
    text = current_text if current_text is not None else render_env_example()
    lines = text.splitlines()
    for key, value in values.items():
        pattern = re.compile(rf"^#?\s*{re.escape(key)}=")
        for index, line in enumerate(lines):
            if pattern.match(line):
                lines[index] = f"{key}={value}"
                break
        else:
            lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def plan_install(options: InstallOptions) -> Plan:
    root = options.root
    env_path = under(root, DEFAULT_ENV_FILE)
    current = env_path.read_text() if env_path.is_file() else None
    existing = read_env_file(env_path) if current is not None else {}
    values = env_file_values(options, existing)
    env_text = render_env_file(current, values)
    settings = _validate(env_text, values)
    venv = options.venv or Path(sys.prefix)
    layout = layout_for(settings, venv, DEFAULT_ENV_FILE)
    extra = layout.extra_write_paths
    plan = Plan(settings=settings, layout=layout)
    system = root is None
    if system and not options.dry_run and not (venv / "bin" / "platformctl").exists():
        raise ConfigError(f"{venv}/bin/platformctl does not exist: give --venv the virtual "
                          "environment Ovation is installed in.")

    config_dir = env_path.parent
    if not config_dir.is_dir():
        plan.add(f"create {config_dir} (root:{SERVICE_USER}, 0750)",
                 lambda: _make_dir(config_dir, "root", SERVICE_USER, 0o750, system))
    if current != env_text:
        plan.add(f"write {env_path} (root:{SERVICE_USER}, 0640; holds the secret key)",
                 lambda: _write(env_path, env_text, 0o640, "root", SERVICE_USER, system))
    for directory in (under(root, settings.data_dir), *(under(root, p) for p in extra)):
        if not directory.is_dir():
            plan.add(f"create {directory} ({SERVICE_USER}:{SERVICE_USER}, 0750)",
                     lambda d=directory: _make_dir(d, SERVICE_USER, SERVICE_USER, 0o750,
                                                   system))
    redis_dir = under(root, settings.redis_dir)
    if settings.owns_redis and not redis_dir.is_dir():
        # redis-server needs its directory to exist; only its user may reach the socket.
        plan.add(f"create {redis_dir} ({SERVICE_USER}:{SERVICE_USER}, 0700)",
                 lambda: _make_dir(redis_dir, SERVICE_USER, SERVICE_USER, 0o700, system))
    if not options.units:
        if system:
            _add_migration(plan, venv)
        return plan
    unit_dir = under(root, UNIT_DIR)
    units = render_units(layout)
    changed_units = False
    for name, text in units.items():
        path = unit_dir / name
        if not path.is_file() or path.read_text() != text:
            changed_units = True
            plan.add(f"write {path}", lambda p=path, t=text: _write(p, t, 0o644, None, None,
                                                                   False))
    for name in all_unit_names():
        path = unit_dir / name
        if name not in units and path.exists():
            changed_units = True
            if system:
                plan.add(f"systemctl disable --now {name}",
                         lambda n=name: host.systemctl("disable", "--now", n, check=False))
            plan.add(f"remove {path} (no longer used)", lambda p=path: p.unlink())
    if not system:
        return plan
    if changed_units:
        plan.add("systemctl daemon-reload", lambda: host.systemctl("daemon-reload"))
    _add_migration(plan, venv)
    names = [TARGET, *(unit_name(service) for service in layout.services)]
    plan.add(f"systemctl enable {' '.join(names)}",
             lambda: host.systemctl("enable", "--quiet", *names))
    if options.start:
        plan.add(f"systemctl restart {TARGET}", lambda: host.systemctl("restart", TARGET))
    return plan


def _add_migration(plan: Plan, venv: Path) -> None:
    """Migrate as the service user, with the env file the services read (always planned: it
    is a no-op when the schema is current, and cheaper to run than to predict)."""
    migrate = [str(venv / "bin" / "platformctl"), "migrate"]
    plan.add(f"run `{' '.join(migrate)}` as {SERVICE_USER}",
             lambda: host.run_command(["runuser", "-u", SERVICE_USER, "--", *migrate],
                                      env={**_clean_environ(),
                                           ENV_FILE_VARIABLE: str(DEFAULT_ENV_FILE)}))


def layout_for(settings: Settings, venv: Path, env_file: Path) -> Layout:
    """The units' layout for this configuration (`install` writes it, `doctor` compares)."""
    extra = []
    database_file = _sqlite_file(settings)
    if database_file is not None and not database_file.is_relative_to(settings.data_dir):
        extra.append(database_file.parent)  # SQLite writes its journal beside the file
    return Layout(venv=venv, env_file=env_file, data_dir=settings.data_dir, user=SERVICE_USER,
                  owns_redis=settings.owns_redis, privileged_port=settings.bind_port < 1024,
                  extra_write_paths=tuple(extra))


def plan_uninstall(purge: bool, root: Path | None = None) -> Plan:
    plan = Plan()
    system = root is None
    unit_dir = under(root, UNIT_DIR)
    installed = [name for name in all_unit_names() if (unit_dir / name).exists()]
    data_dir = _installed_data_dir(root)
    if system and installed:
        plan.add(f"systemctl disable --now {' '.join(installed)}",
                 lambda: host.systemctl("disable", "--now", "--quiet", *installed,
                                        check=False))
    for name in installed:
        plan.add(f"remove {unit_dir / name}", lambda p=unit_dir / name: p.unlink())
    if system and installed:
        plan.add("systemctl daemon-reload", lambda: host.systemctl("daemon-reload"))
    if purge:
        for directory in (under(root, DEFAULT_ENV_FILE).parent, under(root, data_dir)):
            if directory.exists():
                plan.add(f"delete {directory} and everything in it",
                         lambda d=directory: shutil.rmtree(d))
    return plan


def _installed_data_dir(root: Path | None) -> Path:
    env_path = under(root, DEFAULT_ENV_FILE)
    if env_path.is_file():
        value = read_env_file(env_path).get(env_var("data_dir"))
        if value:
            return Path(value)
    return DEFAULT_DATA_DIR


def _validate(env_text: str, values: dict[str, str]) -> Settings:
    """Load the env file as the services will, so a bad value stops before anything is written."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".env") as handle:
        handle.write(env_text)
        handle.flush()
        settings = load_settings(environ={ENV_FILE_VARIABLE: handle.name}).settings
    if not settings.data_dir.is_absolute():
        raise ConfigError(f"{env_var('data_dir')}={values[env_var('data_dir')]}: the data "
                          "directory of a system install must be an absolute path.")
    return settings


def _sqlite_file(settings: Settings) -> Path | None:
    url = settings.effective_database_url
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def _clean_environ() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("OVATION_")}


def _ids(user: str | None, group: str | None) -> tuple[int, int]:
    uid = pwd.getpwnam(user).pw_uid if user else -1
    gid = grp.getgrnam(group).gr_gid if group else -1
    return uid, gid


def _make_dir(path: Path, user: str, group: str, mode: int, chown: bool) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    if chown:
        os.chown(path, *_ids(user, group))


def _write(path: Path, text: str, mode: int, user: str | None, group: str | None,
           chown: bool) -> None:
    """Write atomically with the final mode from the start: a secret is never world-readable,
    not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    if chown:
        os.chown(tmp, *_ids(user, group))
    tmp.replace(path)
