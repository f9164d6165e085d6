"""Shared fixtures: private real Redis and PostgreSQL servers, SQLite files, settings, apps.

Every test gets its own Redis database state and its own SQL database. A missing service is a
failure that says what to install, never a skip.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import peewee as pw
import pytest
import redis

from appliance.plugin_registry import ReactionRegistry
from appliance.settings import Settings
from appliance.storage.database import open_database
from appliance.storage.migrations import migrate
from appliance.supervision import owned_redis
from plugins import builtin, emoji, stars

REPO = Path(__file__).resolve().parent.parent
BUILTIN_FACTORIES = {"view": builtin.view, "like": builtin.like, "applause": builtin.applause}
BUNDLED_FACTORIES = {**BUILTIN_FACTORIES, "emoji": emoji.emoji, "stars": stars.stars}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- Redis -------------------------------------------------------------------------------------

REDIS_TCP_PORT = free_port()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[Path]:
    """A private redis-server on a Unix socket (AOF on, as when Ovation owns it), also on a
    random loopback TCP port (REDIS_TCP_PORT) for tests of OVATION_REDIS_URL=redis://..."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed: run ./install.sh --test")
    directory = tmp_path_factory.mktemp("redis")
    command = owned_redis.redis_command(directory)
    command += ["--port", str(REDIS_TCP_PORT), "--bind", "127.0.0.1"]
    process = subprocess.Popen(command)
    owned_redis.wait_for_socket(directory / "redis.sock", process)
    yield directory / "redis.sock"
    process.terminate()
    process.wait(10)


@pytest.fixture
def redis_url(redis_server: Path) -> str:
    client = redis.Redis(unix_socket_path=str(redis_server))
    client.flushall()
    client.close()
    return f"unix://{redis_server}"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


# -- PostgreSQL --------------------------------------------------------------------------------

def _pg_bindir() -> Path:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             check=True).stdout.strip()
        if (Path(out) / "initdb").exists():
            return Path(out)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL server binaries are missing: run ./install.sh --test")
    return Path(found[-1]).parent


class PostgresServer:
    """A private PostgreSQL cluster in a temporary directory, run as the postgres user."""

    def __init__(self, directory: Path) -> None:
        self.bindir = _pg_bindir()
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self._counter = itertools.count()

    def _run(self, *argv: str) -> None:
        subprocess.run([*self.as_user, *argv], check=True, capture_output=True, cwd="/")

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                  "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.directory / "log"), "-w", "start")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"ovation_test_{os.getpid()}_{next(self._counter)}"
        admin = pw.PostgresqlDatabase("postgres", user="postgres", host="127.0.0.1",
                                      port=self.port)
        admin.connect()
        admin.execute_sql(f'CREATE DATABASE "{name}"')
        admin.close()
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> Iterator[PostgresServer]:
    directory = Path("/tmp") / f"ovation-pg-{os.getpid()}"  # postgres must reach it
    shutil.rmtree(directory, ignore_errors=True)
    server = PostgresServer(directory)
    server.init()
    server.start()
    yield server
    try:
        server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- SQL databases (every storage test runs on both) -----------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ovation.db'}"
    return request.getfixturevalue("postgres_server").create_database()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'ovation.db'}"


@pytest.fixture
def make_settings(tmp_path, redis_url):
    def build(database_url: str, **values) -> Settings:
        values.setdefault("data_dir", tmp_path / "data")
        values.setdefault("secret_key", "test-secret")
        # Load tests hammer from one address: the gateway's limits are tested on their own
        # (tests/web/test_gateway.py), and kept out of the way elsewhere.
        for name in ("rate_interactions_per_min", "rate_interactions_per_visitor_per_min",
                     "rate_reads_per_min", "rate_admin_per_min"):
            values.setdefault(name, 0)
        return Settings(database_url=database_url, redis_url=redis_url, **values)

    return build


@pytest.fixture
def settings(make_settings, database_url) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def database(settings) -> Iterator[pw.Database]:
    db = open_database(settings.effective_database_url)
    migrate(db)
    yield db
    db.close()


@pytest.fixture
def registry(settings) -> ReactionRegistry:
    return ReactionRegistry.from_factories(BUILTIN_FACTORIES, settings)


# -- the example third-party plugin, installed with pip -----------------------------------------

EXAMPLE_PLUGIN = REPO / "plugins" / "examples" / "ovation-bookmark"


@pytest.fixture(scope="session")
def bookmark_plugin_dir(tmp_path_factory) -> Path:
    """plugins/examples/ovation-bookmark installed with pip into a directory of its own, as a
    third party's package would be: processes given it on PYTHONPATH discover it through its
    entry point. (Not into the venv, so the rest of the suite keeps its known set of types.)"""
    target = tmp_path_factory.mktemp("bookmark-plugin")
    source = tmp_path_factory.mktemp("bookmark-source") / "ovation-bookmark"
    shutil.copytree(EXAMPLE_PLUGIN, source)  # the build leaves files beside the sources
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
         "--disable-pip-version-check", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


# -- processes ---------------------------------------------------------------------------------

def ovation_env(settings: Settings) -> dict[str, str]:
    from appliance.supervision.up import child_environment

    return {**os.environ, **child_environment(settings), "PYTHONUNBUFFERED": "1"}


def start_process(settings: Settings, *args: str, log: Path | None = None,
                  extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """Run `platformctl ARGS` with these settings (e.g. `serve web`)."""
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    env = {**ovation_env(settings), **(extra_env or {})}
    return subprocess.Popen([sys.executable, "-m", "cli", *args], env=env,
                            cwd=REPO, stdout=output, stderr=subprocess.STDOUT
                            if log else subprocess.DEVNULL, start_new_session=True)


def wait_http(url: str, timeout_s: float = 20.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {timeout_s} s")


def stop_process(process: subprocess.Popen, timeout_s: float = 20.0) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
