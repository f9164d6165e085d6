"""Every setting Ovation reads, declared once.

Each field of `Settings` is one setting: its type, default, unit (in the name) and help text.
The environment variable is `OVATION_` + the name in capitals. The same declaration feeds
`platformctl config show`, `packaging/ovation.env.example` (a test keeps them equal) and
validation at start-up.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from appliance.errors import ConfigError

ENV_PREFIX = "OVATION_"
ENV_FILE_VARIABLE = "OVATION_ENV_FILE"
OWNED_REDIS = "owned"


def default_data_dir() -> Path:
    """The data directory when none is given: the XDG data home, like other user tools."""
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "ovation"


class Settings(BaseModel):
    """Ovation's effective configuration. Field descriptions are the documentation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Directory for the SQLite database, the owned Redis and the secret key.",
    )
    database_url: str = Field(
        "",
        description="SQL database: sqlite:///PATH or postgresql://USER@HOST/DB. "
        "Empty means a SQLite file in the data directory.",
    )
    redis_url: str = Field(
        OWNED_REDIS,
        description="redis://HOST:PORT/DB or unix:///PATH, or 'owned' for a private "
        "redis-server on a Unix socket in the data directory.",
    )
    bind: str = Field("127.0.0.1:8700", description="Address and port the web process listens on.")
    public_url: str = Field(
        "", description="URL readers reach Ovation at (printed and used in links). "
        "Empty means http://BIND."
    )
    web_workers: int = Field(1, ge=1, le=64, description="Hypercorn worker processes for web.")
    flush_interval_s: float = Field(
        5.0, gt=0, le=3600, description="Seconds between flushes of pending counters to SQL."
    )
    flush_retry_max_s: float = Field(
        60.0, gt=0, le=3600, description="Longest wait between flush retries while SQL is down."
    )
    feed_poll_interval_s: float = Field(
        600.0, ge=10, le=86400,
        description="Seconds between polls of the sites' feeds (RSS or Atom) for new posts; "
        "the flusher process polls them.",
    )
    stream_trim_interval_s: float = Field(
        60.0, ge=0, le=86400,
        description="Seconds between trims of the event streams: the listener and the "
        "notifier drop the entries every consumer group has acknowledged. 0: never (only "
        "the cap of about a million entries per stream bounds them).",
    )
    view_window_s: int = Field(
        1800, ge=0, le=86400 * 30,
        description="A visitor's views of one page within this many seconds count once.",
    )
    applause_cap: int = Field(
        50, ge=1, le=100000, description="Most applause one visitor may give one page."
    )
    plugins: str = Field(
        "*", pattern=r"^\s*(\*|[a-z][a-z0-9_-]*(\s*,\s*[a-z][a-z0-9_-]*)*)\s*$",
        description="Comma-separated entry-point names of the reaction plugins to load "
        "(`platformctl plugins list` shows them), or * for every installed one.",
    )
    live_coalesce_ms: int = Field(
        250, ge=10, le=10000,
        description="Live totals for a page are pushed at most once per this many milliseconds.",
    )
    live_watch_ttl_s: float = Field(
        30.0, ge=1, le=3600,
        description="Seconds a web worker's mark that live sockets follow a page lasts unless "
        "renewed (every third of this, while they do). Changes to pages nobody follows are "
        "not pushed; a page is pushed at most this long after its last socket left or its "
        "worker died.",
    )
    totals_cache_ttl_s: int = Field(
        86400, ge=60, description="How long Redis keeps a page's SQL totals after last use."
    )
    max_batch_paths: int = Field(100, ge=1, le=1000, description="Most paths in one batch read.")
    max_path_length: int = Field(
        1024, ge=16, le=4096, description="Longest page path accepted, after normalisation."
    )
    site_cache_s: float = Field(
        5.0, ge=0, le=3600, description="Seconds a web worker caches a site's configuration."
    )
    comment_max_length: int = Field(
        10000, ge=100, le=100000, description="Longest comment body, in characters."
    )
    comment_edit_window_s: int = Field(
        900, ge=0, le=86400 * 7,
        description="Authors may edit or delete their comment this long after posting it.",
    )
    comment_max_depth: int = Field(
        4, ge=1, le=20, description="Deepest reply level; deeper replies attach at this level."
    )
    comment_rate_limit: int = Field(
        5, ge=1, le=10000,
        description="Most comments one visitor (and one IP) may post per comment_rate_window_s.",
    )
    comment_rate_window_s: int = Field(
        600, ge=1, le=86400, description="Window of the comment rate limit, in seconds."
    )
    comment_page_size: int = Field(
        50, ge=1, le=500, description="Top-level comments per page of a thread."
    )
    # -- the gateway: who the client is, and how often it may call ------------------------------
    trusted_proxies: str = Field(
        "", description="Comma-separated addresses or CIDR ranges of reverse proxies whose "
        "X-Forwarded-For / Forwarded headers name the client. Empty: trust none.",
    )
    rate_interactions_per_min: int = Field(
        600, ge=0, le=1_000_000,
        description="Interactions one network (IP, or IPv6 /64) may record per minute; 0: no "
        "limit. Per-visitor rules (likes once, applause cap) apply regardless.",
    )
    rate_interactions_per_visitor_per_min: int = Field(
        120, ge=0, le=1_000_000,
        description="Interactions one visitor id may record per minute; 0: no limit.",
    )
    rate_reads_per_min: int = Field(
        1200, ge=0, le=1_000_000,
        description="Totals and thread reads one network may make per minute; 0: no limit.",
    )
    rate_admin_per_min: int = Field(
        600, ge=0, le=1_000_000,
        description="Admin API requests one network may make per minute; 0: no limit.",
    )
    ws_connections_per_ip: int = Field(
        50, ge=1, le=100_000,
        description="Open live WebSocket connections one network may hold on one web worker.",
    )
    ws_messages_per_s: int = Field(
        20, ge=1, le=10_000,
        description="Messages one WebSocket connection may send per second (burst: 5 s worth).",
    )
    ip_salt_rotation_h: int = Field(
        24, ge=1, le=720,
        description="Hours one random salt of the IP hashes is used before the next one "
        "replaces it.",
    )
    ip_salt_retention_days: int = Field(
        30, ge=1, le=365,
        description="Days after which a salt of the IP hashes is deleted, making the hashes "
        "made with it unlinkable; IP bans last this long at most.",
    )
    secret_key: str = Field(
        "", description="Key for hashing visitor ids. Empty means one generated and kept "
        "in the data directory.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Logging level of every process."
    )
    # -- notifications (issue 4): queue, e-mail (SMTP) and webhooks ---------------------------
    notify_max_attempts: int = Field(
        8, ge=1, le=100,
        description="Delivery attempts of one notification before it goes to the dead letters.",
    )
    notify_retry_base_s: float = Field(
        30.0, ge=0.01, le=86400,
        description="Wait before the first retry of a failed delivery; doubles at each "
        "attempt, with random jitter.",
    )
    notify_retry_max_s: float = Field(
        3600.0, ge=0.01, le=86400 * 7, description="Longest wait between two delivery attempts."
    )
    notify_timeout_s: float = Field(
        10.0, ge=0.1, le=300,
        description="Timeout of one SMTP or webhook network operation, in seconds.",
    )
    notify_concurrency: int = Field(
        8, ge=1, le=256, description="Deliveries one notifier process makes at the same time."
    )
    notify_digest_window_s: int = Field(
        300, ge=0, le=86400,
        description="E-mails to one address from one site come at most once per this many "
        "seconds; what arrives in between is sent as one digest. 0: no digests.",
    )
    notify_email_cap_per_hour: int = Field(
        20, ge=1, le=100000,
        description="Most e-mails (digests count once) sent to one address for one site per "
        "hour; more wait for the next hour, as one digest.",
    )
    notify_keep_s: int = Field(
        86400 * 7, ge=60, le=86400 * 365,
        description="How long delivered notifications stay listed by `platformctl "
        "notifications list`.",
    )
    notify_webhook_allow_private: bool = Field(
        False,
        description="Let webhooks reach loopback, private and link-local addresses (cloud "
        "metadata addresses stay refused). Off: such URLs are refused (SSRF protection).",
    )
    smtp_host: str = Field(
        "", description="SMTP server for e-mail notifications. Empty: no e-mail is sent."
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP server port.")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="starttls (upgrade a plain connection, usually port 587), tls (TLS from "
        "the start, usually port 465) or none (local relays only).",
    )
    smtp_username: str = Field("", description="SMTP login; empty: no authentication.")
    smtp_password: str = Field("", description="SMTP password (with smtp_username).")
    smtp_from: str = Field(
        "", description="Sender address of notification e-mails, e.g. "
        "'Blog comments <comments@blog.example>'. Empty: ovation@ the public URL's host.",
    )
    smtp_ca_file: str = Field(
        "", description="PEM file of the certificate authorities trusted for SMTP TLS. "
        "Empty: the system's.",
    )

    @field_validator("smtp_host", "smtp_username", "smtp_password", "smtp_from")
    @classmethod
    def _single_line(cls, value: str) -> str:
        if any(char in value for char in "\r\n\0"):
            raise ValueError("must be one line (no CR, LF or NUL)")
        return value

    @field_validator("bind")
    @classmethod
    def _bind_has_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must look like HOST:PORT, e.g. 127.0.0.1:8700")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        import ipaddress

        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address or CIDR range") from None
        return value

    @property
    def trusted_proxy_networks(self) -> tuple:
        import ipaddress

        return tuple(ipaddress.ip_network(part.strip(), strict=False)
                     for part in self.trusted_proxies.split(",") if part.strip())

    @field_validator("ip_salt_retention_days")
    @classmethod
    def _retention_covers_a_rotation(cls, value: int, info: ValidationInfo) -> int:
        # A salt deleted while still current would make every fresh hash unlinkable at once.
        rotation_h = info.data.get("ip_salt_rotation_h")
        if rotation_h is not None and value * 24 <= rotation_h:
            raise ValueError(f"must be longer than OVATION_IP_SALT_ROTATION_H ({rotation_h} h)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value != OWNED_REDIS and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be 'owned' or start with redis://, rediss:// or unix://")
        return value

    # Derived values: computed, never configured twice.

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'ovation.db'}"

    @property
    def owns_redis(self) -> bool:
        return self.redis_url == OWNED_REDIS

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def redis_socket(self) -> Path:
        return self.redis_dir / "redis.sock"

    @property
    def effective_redis_url(self) -> str:
        return f"unix://{self.redis_socket}" if self.owns_redis else self.redis_url

    @property
    def bind_host(self) -> str:
        return self.bind.rpartition(":")[0].strip("[]")

    @property
    def bind_port(self) -> int:
        return int(self.bind.rpartition(":")[2])

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.bind_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.bind_port}"

    def hashing_key(self) -> bytes:
        """The key for visitor and IP hashes: configured, or generated once and kept."""
        if self.secret_key:
            return self.secret_key.encode()
        key_file = self.data_dir / "secret_key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return key_file.read_text().strip().encode()


SETTING_NAMES: tuple[str, ...] = tuple(Settings.model_fields)


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def render_env_example() -> str:
    """The documented example env file (`packaging/ovation.env.example`), from `Settings`.

    One block per field: its description, its allowed values, then the variable commented out
    with its default. A test keeps the file in `packaging/` equal to this text.
    """
    import textwrap
    import typing

    import annotated_types

    def comment(text: str) -> list[str]:
        return textwrap.wrap(text, width=98, initial_indent="# ", subsequent_indent="# ")

    lines = [
        "# Ovation settings: one block per setting, each commented out at its default.",
        "# Generated by `platformctl config example` from appliance/settings.py.",
        "#",
        "# Ovation reads this file from DATA_DIR/ovation.env, or from the path in "
        f"{ENV_FILE_VARIABLE}.",
        "# Precedence: defaults < this file < environment variables < command-line flags.",
        "# Every line must be an OVATION_ setting; unknown OVATION_ names warn and are ignored.",
    ]
    bounds = {annotated_types.Ge: ("ge", "at least"), annotated_types.Gt: ("gt", "more than"),
              annotated_types.Le: ("le", "at most"), annotated_types.Lt: ("lt", "less than")}
    for name, field in Settings.model_fields.items():
        lines.append("")
        lines.extend(comment(field.description or name))
        limits = [f"{bounds[type(item)][1]} {getattr(item, bounds[type(item)][0])}"
                  for item in field.metadata if type(item) in bounds]
        if limits:
            lines.extend(comment(f"Allowed: {', '.join(limits)}."))
        if typing.get_origin(field.annotation) is Literal:
            lines.extend(comment(f"One of: {', '.join(typing.get_args(field.annotation))}."))
        if name == "data_dir":
            default = "~/.local/share/ovation"
            lines.extend(comment("Default: $XDG_DATA_HOME/ovation when XDG_DATA_HOME is set. "
                                 "Write an absolute path: ~ is not expanded."))
        else:
            default = str(field.get_default(call_default_factory=True))
        lines.append(f"# {env_var(name)}={default}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class LoadedSettings:
    """Settings plus where each value came from, for `platformctl config show`."""

    settings: Settings
    sources: dict[str, str]


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a systemd-style env file: KEY=VALUE lines, # comments, optional quotes."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_settings(
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> LoadedSettings:
    """Build the effective settings: defaults < env file < environment < command-line flags.

    Flags not given are None in `overrides` and ignored, so only flags actually passed win.
    """
    environ = dict(os.environ if environ is None else environ)
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}

    env_file = _locate_env_file(environ, overrides)
    if env_file is not None:
        for key, value in read_env_file(env_file).items():
            _take(key, value, f"env file {env_file}", raw, sources)
    for key, value in environ.items():
        _take(key, value, "environment", raw, sources, strict=False)
    for name, value in overrides.items():
        raw[name] = value
        sources[name] = "command line"

    try:
        settings = Settings(**raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        given = raw.get(name)
        raise ConfigError(
            f"{env_var(name)}={given!r} ({sources.get(name, 'default')}): {first['msg']}"
        ) from None
    for name in SETTING_NAMES:
        sources.setdefault(name, "default")
    return LoadedSettings(settings, sources)


def _locate_env_file(environ: dict[str, str], overrides: dict[str, Any]) -> Path | None:
    if environ.get(ENV_FILE_VARIABLE):
        path = Path(environ[ENV_FILE_VARIABLE])
        if not path.is_file():
            raise ConfigError(f"{ENV_FILE_VARIABLE}={path}: no such file")
        return path
    data_dir = overrides.get("data_dir") or environ.get(env_var("data_dir"))
    candidate = Path(data_dir) / "ovation.env" if data_dir else default_data_dir() / "ovation.env"
    return candidate if candidate.is_file() else None


def _take(
    key: str, value: str, source: str, raw: dict[str, Any], sources: dict[str, str],
    strict: bool = True,
) -> None:
    if not key.startswith(ENV_PREFIX) or key == ENV_FILE_VARIABLE:
        if strict:
            raise ConfigError(f"{source}: {key} is not an Ovation setting (they start with "
                              f"{ENV_PREFIX})")
        return
    name = key[len(ENV_PREFIX):].lower()
    if name not in SETTING_NAMES:
        # Unknown keys warn rather than stop: a typo must not take a site down on upgrade.
        import logging

        logging.getLogger("ovation.settings").warning("%s: unknown setting %s ignored",
                                                      source, key)
        return
    raw[name] = value
    sources[name] = source
