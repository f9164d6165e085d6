"""`status`, `doctor`, `config check` and the systemd commands on a host without systemd, and
`status` against a real running `platformctl up`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.operations import services
from appliance.operations.services import service_states
from tests.cli.test_up import start_up, wait_for_text
from tests.conftest import REPO, free_port, wait_http


def run_cli(*args: str, data_dir=None, extra_env=None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OVATION_")}
    env.update(extra_env or {})
    prefix = ["--data-dir", str(data_dir)] if data_dir else []
    return subprocess.run([sys.executable, "-m", "cli", *prefix, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [["start"], ["stop", "web"], ["restart"], ["logs", "-f"],
                                     ["install"], ["uninstall"]])
def test_systemd_commands_say_so_in_one_line_without_systemd(tmp_path, command):
    result = run_cli(*command, data_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "platformctl up" in result.stderr
    assert "systemd is not running" in result.stderr and "Traceback" not in result.stderr


def test_status_with_nothing_running_exits_non_zero(tmp_path):
    result = run_cli("status", data_dir=tmp_path)
    assert result.returncode == 3
    assert "Nothing runs Ovation here" in result.stderr and "platformctl up" in result.stderr
    as_json = json.loads(run_cli("status", "--json", data_dir=tmp_path).stdout)
    assert as_json["ok"] is False and as_json["run_by"] == "nothing"
    assert {service["name"] for service in as_json["services"]} == {
        "redis", "flusher", "listener", "notifier", "web"}
    assert not (tmp_path / "ovation.db").exists()  # status creates nothing


def run_restore_in_process(settings, tmp_path) -> str:
    """What `restore` says about a valid-looking backup while Ovation runs."""
    from appliance.errors import OvationError
    from appliance.operations.backup import restore

    backup = tmp_path / "backup.db"
    backup.write_bytes(b"SQLite format 3\x00" + bytes(100))
    try:
        restore(settings, backup, lambda done, total: None)
    except OvationError as exc:
        return exc.message
    return "restored"


def test_status_reads_a_running_up_instance(tmp_path, make_settings, monkeypatch):
    data_dir = tmp_path / "data"
    port = free_port()
    log_path = tmp_path / "up.log"
    with open(log_path, "ab") as log:
        up = start_up(data_dir, port, log)
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz", timeout_s=40)
            wait_for_text(log_path, "Ovation is up.")
            result = run_cli("status", "--json", data_dir=data_dir)
            assert result.returncode == 0, result.stdout + result.stderr
            status = json.loads(result.stdout)
            assert status["run_by"] == "platformctl up" and status["ok"]
            pids = json.loads((data_dir / "up.json").read_text())["processes"]
            for service in status["services"]:
                assert service["state"] == "active"
                assert service["pid"] == pids[service["name"]]
                assert service["uptime_s"] >= 0 and service["memory_bytes"] > 1_000_000
                assert service["restarts"] == 0
            health = status["health"]
            assert health["redis_ok"] and health["database_ok"]
            assert health["pending_migrations"] == 0 and health["version"]
            assert set(health["stream_lengths"]) == {"publish", "submissions", "notifications"}

            table = run_cli("status", data_dir=data_dir)
            assert table.returncode == 0
            assert "run by platformctl up" in table.stdout and "active" in table.stdout

            # a child killed: the supervisor restarts it and status counts the restart
            os.kill(pids["notifier"], signal.SIGKILL)
            restarted = None
            for _ in range(100):
                state = json.loads((data_dir / "up.json").read_text())
                if state["processes"]["notifier"] != pids["notifier"]:
                    restarted = state
                    break
                time.sleep(0.1)
            assert restarted and restarted["restarts"]["notifier"] == 1

            doctor = run_cli("doctor", data_dir=data_dir)
            assert "web runs under `platformctl up`" in doctor.stdout, doctor.stdout

            # Where systemd is PID 1 (most laptops), a running `up` still answers, not the
            # never-installed units: `restore` relies on this to refuse while `up` runs.
            monkeypatch.setattr(services, "SYSTEMD_RUNTIME_DIR", tmp_path)
            assert services.systemd_running()
            settings = make_settings("", data_dir=data_dir)
            assert {service.source for service in service_states(settings)} == {"up"}
            assert all(service.running for service in service_states(settings))
            refused = run_restore_in_process(settings, tmp_path)
            assert "Ovation is running" in refused
            monkeypatch.undo()
            assert "Redis answers" in doctor.stdout
        finally:
            up.send_signal(signal.SIGINT)
            assert up.wait(60) == 0, log_path.read_text()
    settings = make_settings("", data_dir=data_dir)
    assert all(not service.running for service in service_states(settings))


def test_doctor_finds_a_taken_port_and_an_unreachable_database(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("doctor", data_dir=tmp_path, extra_env={
            "OVATION_BIND": f"127.0.0.1:{port}",
            "OVATION_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is not available to web" in result.stdout
    assert "the database is not reachable" in result.stdout
    assert "systemd is not running here" in result.stdout


def test_doctor_flags_a_world_readable_env_file(tmp_path):
    env_file = tmp_path / "ovation.env"
    env_file.write_text("OVATION_SECRET_KEY=abc\n")
    env_file.chmod(0o644)
    result = run_cli("doctor", data_dir=tmp_path, extra_env={"OVATION_ENV_FILE": str(env_file)})
    assert "is readable by every user" in result.stdout


def test_config_check(tmp_path):
    good = run_cli("config", "check", data_dir=tmp_path)
    assert good.returncode == 0 and "The configuration is valid" in good.stdout
    bad = run_cli("config", "check", data_dir=tmp_path, extra_env={"OVATION_BIND": "nowhere"})
    assert bad.returncode == 2 and bad.stderr.startswith("error: OVATION_BIND='nowhere'")


PLATFORMCTL = Path(sys.prefix) / "bin" / "platformctl"  # the installed entry point


def bash_complete(line: str) -> list[str]:
    """What bash offers for `line` with the script `platformctl completion bash` prints,
    through the installed `platformctl` as a user's shell runs it."""
    script = ('source <(platformctl completion bash); read -ra COMP_WORDS <<< "$LINE"; '
              '[[ "$LINE" == *" " ]] && COMP_WORDS+=(""); '
              'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _platformctl_completion platformctl; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    env = {**os.environ, "PATH": f"{PLATFORMCTL.parent}:{os.environ['PATH']}", "LINE": line}
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "not supported" not in result.stdout + result.stderr, \
        result.stdout + result.stderr
    return [word for word in result.stdout.splitlines() if word]


def test_bash_completion_completes_commands_services_and_options():
    assert run_cli("completion", "bash").returncode == 0
    assert bash_complete("platformctl res") == ["restart", "restore"]
    assert bash_complete("platformctl --data-dir /tmp/x sta") == ["start", "status"]
    assert bash_complete("platformctl restart ") == ["web", "flusher", "listener", "notifier",
                                                     "redis"]
    assert bash_complete("platformctl import --format ") == ["auto", "json", "disqus",
                                                            "wordpress", "isso"]
    assert bash_complete("platformctl config ") == ["show", "example", "check"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_completion_answer(shell):
    script = run_cli("completion", shell)
    assert script.returncode == 0 and "_PLATFORMCTL_COMPLETE=complete_" + shell in script.stdout
    # Neither shell is installed here: ask the program the way their scripts do.
    env = {**os.environ, "_PLATFORMCTL_COMPLETE": f"complete_{shell}",
           "_TYPER_COMPLETE_ARGS": "platformctl res", "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    result = subprocess.run([str(PLATFORMCTL)], env=env, capture_output=True, text=True,
                            timeout=60)
    assert "restart" in result.stdout and "restore" in result.stdout, result.stdout
    assert "status" not in result.stdout


def test_every_command_and_group_has_help():
    from typer.main import get_command
    from typer.testing import CliRunner

    import cli.main

    def walk(command, path):
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    paths = list(walk(get_command(cli.main.app), []))
    for needed in (["install"], ["uninstall"], ["start"], ["stop"], ["restart"], ["status"],
                   ["logs"], ["doctor"], ["backup"], ["restore"], ["export"], ["import"],
                   ["completion"], ["config", "show"], ["config", "check"]):
        assert needed in paths, needed
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(cli.main.app, [*path, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, (path, result.output)


SYSTEMCTL_SHOW = """MainPID=812
NRestarts=0
MemoryCurrent=10485760
Id=ovation-redis.service
ActiveState=active
ActiveEnterTimestampMonotonic=5000000

MainPID=0
NRestarts=4
MemoryCurrent=[not set]
Id=ovation-flusher.service
ActiveState=failed
ActiveEnterTimestampMonotonic=0

MainPID=0
NRestarts=0
MemoryCurrent=18446744073709551615
Id=ovation-web.service
ActiveState=activating
ActiveEnterTimestampMonotonic=0
"""


def test_states_from_systemctl_show():
    """`systemctl show` lists properties in its own order, one block per unit (as systemd 252
    prints them); a unit it does not mention is inactive."""
    states = services.states_from_show(["redis", "flusher", "listener", "web"],
                                       SYSTEMCTL_SHOW, now_us=65_000_000)
    redis_state, flusher, listener, web = states
    assert (redis_state.state, redis_state.pid, redis_state.uptime_s,
            redis_state.memory_bytes, redis_state.restarts) == ("active", 812, 60.0,
                                                                10485760, 0)
    assert (flusher.state, flusher.pid, flusher.uptime_s, flusher.restarts) == \
        ("failed", None, None, 4)
    assert (listener.state, listener.restarts) == ("inactive", None)
    assert web.state == "activating" and web.memory_bytes is None and not web.running
    assert {state.source for state in states} == {"systemd"}


def test_logs_command_line():
    from cli.commands.service import journal_command

    assert journal_command(["ovation-web.service"]) == [
        "journalctl", "--no-pager", "--output=short-iso", "-u", "ovation-web.service"]
    assert journal_command(["ovation-redis.service", "ovation-web.service"], follow=True,
                           since="10 min ago", lines=50)[3:] == [
        "-u", "ovation-redis.service", "-u", "ovation-web.service", "--follow",
        "--since", "10 min ago", "--lines", "50"]


def test_doctor_reports_pending_migrations(tmp_path):
    import sqlite3

    sqlite3.connect(tmp_path / "ovation.db").close()  # a database nobody migrated
    result = run_cli("doctor", data_dir=tmp_path)
    assert result.returncode == 1
    assert "migration(s) pending: `platformctl migrate`" in " ".join(result.stdout.split())
    status = json.loads(run_cli("status", "--json", data_dir=tmp_path).stdout)
    from appliance.storage.migrations import MIGRATIONS

    assert status["health"]["pending_migrations"] == len(MIGRATIONS) and not status["ok"]


def test_doctor_finds_unit_drift(tmp_path, monkeypatch):
    from appliance.operations.doctor import check_unit_drift
    from appliance.operations.install import InstallOptions, plan_install
    from appliance.settings import Settings

    monkeypatch.delenv("OVATION_ENV_FILE", raising=False)
    root = tmp_path / "root"
    for step in plan_install(InstallOptions(root=root, venv=Path("/opt/ovation/venv"))).steps:
        step.action()
    unit_dir = root / "etc/systemd/system"

    def configured(redis_url: str) -> Settings:
        # as installed: SQLite in the data directory
        return Settings(database_url="", redis_url=redis_url, secret_key="k",
                        data_dir=Path("/var/lib/ovation"))

    [finding] = check_unit_drift(configured("owned"), unit_dir)
    assert finding.level == "ok", finding
    web = unit_dir / "ovation-web.service"
    web.write_text(web.read_text().replace("KillMode=mixed\n", ""))  # edited by hand
    [finding] = check_unit_drift(configured("owned"), unit_dir)
    assert finding.level == "warn" and "ovation-web.service differ" in finding.message
    # the configuration now names an existing Redis: every unit must lose ovation-redis
    [finding] = check_unit_drift(configured("redis://127.0.0.1:6379/0"), unit_dir)
    assert finding.level == "warn" and "ovation-flusher.service" in finding.message


def test_health_counts_the_notification_delivery_queue(make_settings, sqlite_url,
                                                       redis_client):
    from rich.console import Console

    from appliance.notify import keys
    from appliance.operations.health import appliance_health
    from cli.commands.status import render_status

    settings = make_settings(sqlite_url)
    redis_client.zadd(keys.DUE, {"a" * 24: time.time(), "b" * 24: time.time() + 600})
    health = appliance_health(settings)
    assert health.redis_ok and health.deliveries_queued == 2
    assert health.as_dict()["deliveries_queued"] == 2
    console = Console(width=120, record=True)
    console.print(render_status([], health))
    assert "notification deliveries │ 2 queued" in console.export_text()


def test_no_false_drift_for_a_sqlite_file_outside_the_data_directory(tmp_path, monkeypatch):
    from appliance.operations.doctor import check_unit_drift
    from appliance.operations.install import InstallOptions, plan_install
    from appliance.settings import Settings

    monkeypatch.delenv("OVATION_ENV_FILE", raising=False)
    root = tmp_path / "root"
    url = "sqlite:////srv/ovation/ovation.db"
    for step in plan_install(InstallOptions(root=root, venv=Path("/opt/ovation/venv"),
                                            database_url=url)).steps:
        step.action()
    web = (root / "etc/systemd/system/ovation-web.service").read_text()
    assert "ReadWritePaths=/var/lib/ovation /srv/ovation" in web.splitlines()
    settings = Settings(database_url=url, redis_url="owned", secret_key="k",
                        data_dir=Path("/var/lib/ovation"))
    [finding] = check_unit_drift(settings, root / "etc/systemd/system")
    assert finding.level == "ok", finding.message
