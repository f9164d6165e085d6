"""`platformctl up` end to end: start, interact, Ctrl-C, start again, totals kept, nothing left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx

from tests.conftest import REPO, free_port, wait_http


def start_up(data_dir, port, log) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OVATION_")}
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "up", "--data-dir", str(data_dir), "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes once its parent reaps it.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def wait_for_text(path, text: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in {path}")


def interact(url: str, body: dict) -> dict:
    response = httpx.post(f"{url}/api/v1/sites/demo/interactions", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_up_runs_everything_stops_cleanly_and_keeps_totals(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "up.log"
    with open(log_path, "ab") as log:
        up = start_up(data_dir, port, log)
        try:
            wait_http(url + "/readyz", timeout_s=40)
            wait_for_text(log_path, "Ovation is up.")
            state = json.loads((data_dir / "up.json").read_text())
            pids = [pid for pid in state["processes"].values() if pid]
            assert set(state["processes"]) == {"redis", "flusher", "listener", "notifier", "web"}
            interact(url, {"path": "/hello", "reaction": "applause", "amount": 7,
                           "visitor": "visitor-one"})
            interact(url, {"path": "/hello", "reaction": "like", "visitor": "visitor-one"})
            demo = httpx.get(url + "/").text
            assert "Ovation demo" in demo
        finally:
            up.send_signal(signal.SIGINT)  # what Ctrl-C sends
            assert up.wait(60) == 0, log_path.read_text()
    for pid in pids:
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(pid), f"process {pid} outlived `up`"
    assert not (data_dir / "up.json").exists()
    assert (data_dir / "ovation.db").exists() and (data_dir / "redis" / "appendonlydir").exists()
    output = log_path.read_text()
    assert f"Demo page: {url}/" in output and f"{url}/docs" in output

    with open(log_path, "ab") as log:
        up = start_up(data_dir, port, log)
        try:
            wait_http(url + "/readyz", timeout_s=40)
            totals = httpx.get(f"{url}/api/v1/sites/demo/totals",
                               params={"path": "/hello", "visitor": "visitor-one"}).json()
            assert totals["totals"]["applause"] == 7 and totals["totals"]["like"] == 1
            # The demo site shows every bundled kind: no emoji picked, no rating given yet.
            assert totals["visitor"] == {"like": True, "applause": 7, "emoji": None,
                                         "stars": None}
        finally:
            up.send_signal(signal.SIGINT)
            assert up.wait(60) == 0


def test_up_restarts_a_process_that_dies(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "up.log", "ab") as log:
        up = start_up(data_dir, port, log)
        try:
            wait_http(url + "/readyz", timeout_s=40)
            before = json.loads((data_dir / "up.json").read_text())["processes"]
            os.kill(before["flusher"], signal.SIGKILL)
            deadline = time.monotonic() + 15
            after = before
            while after["flusher"] in (before["flusher"], None) and time.monotonic() < deadline:
                time.sleep(0.2)
                after = json.loads((data_dir / "up.json").read_text())["processes"]
            assert after["flusher"] not in (before["flusher"], None)
            assert alive(after["flusher"])
        finally:
            up.send_signal(signal.SIGINT)
            assert up.wait(60) == 0


def test_second_up_on_the_same_data_dir_is_refused(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    with open(tmp_path / "up.log", "ab") as log:
        up = start_up(data_dir, port, log)
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz", timeout_s=40)
            second = subprocess.run(
                [sys.executable, "-m", "cli", "up", "--data-dir", str(data_dir),
                 "--port", str(free_port())], cwd=REPO, capture_output=True, text=True,
                timeout=60)
            assert second.returncode != 0
            assert "another `platformctl up`" in second.stderr
            assert "Traceback" not in second.stderr
        finally:
            up.send_signal(signal.SIGINT)
            assert up.wait(60) == 0


def test_up_uses_an_existing_postgresql_and_redis(tmp_path, redis_url, postgres_server):
    from tests.conftest import REDIS_TCP_PORT

    database_url = postgres_server.create_database()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("OVATION_")}
    env.update(OVATION_DATABASE_URL=database_url,
               OVATION_REDIS_URL=f"redis://127.0.0.1:{REDIS_TCP_PORT}/0")
    with open(tmp_path / "up.log", "ab") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", "--data-dir", str(tmp_path / "data"),
             "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            wait_http(url + "/readyz", timeout_s=40)
            state = json.loads((tmp_path / "data" / "up.json").read_text())
            assert "redis" not in state["processes"]  # nothing owned: the given one is used
            interact(url, {"path": "/pg", "reaction": "applause", "amount": 3,
                           "visitor": "visitor-pg"})
        finally:
            up.send_signal(signal.SIGINT)
            assert up.wait(60) == 0, (tmp_path / "up.log").read_text()
    assert not (tmp_path / "data" / "ovation.db").exists()
    import peewee as pw

    from appliance.storage.database import open_database
    from appliance.storage.models import Counter

    database = open_database(database_url)
    with database.connection_context():
        assert Counter.select(pw.fn.SUM(Counter.total)).scalar() == 3
    database.close()


def test_up_refuses_a_port_that_is_taken(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "cli", "up", "--data-dir", str(tmp_path / "data"),
             "--port", str(port)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"Port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Traceback" not in result.stderr
