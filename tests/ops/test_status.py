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

import pytest

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


def test_status_reads_a_running_up_instance(tmp_path, make_settings):
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
            assert "web is running and listening" in doctor.stdout, doctor.stdout
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


def test_completion_script(tmp_path):
    result = run_cli("completion", "bash")
    assert result.returncode == 0 and "_PLATFORMCTL_COMPLETE" in result.stdout
    env = {**os.environ, "_PLATFORMCTL_COMPLETE": "complete_bash", "COMP_WORDS": "platformctl sta",
           "COMP_CWORD": "1"}
    completed = subprocess.run([sys.executable, "-m", "cli"], env=env, cwd=REPO,
                               capture_output=True, text=True, timeout=30)
    assert "status" in completed.stdout and "start" in completed.stdout
