"""Each unit's ExecStart, started for real (these machines have no running systemd, so this is
how the units' commands are proven): rendered for a temporary layout that differs from the
shipped units only in its paths, run with exactly the unit's environment, shown to serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import peewee as pw
import redis

from appliance.operations.units import Layout, exec_start, render_units, unit_environment
from tests.conftest import REPO, free_port, wait_http


def wait_for(predicate, what: str, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


def start_unit(text: str, log: Path) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OVATION_")}
    env.update(unit_environment(text))
    return subprocess.Popen(exec_start(text), env=env, cwd="/", stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_every_unit_command_starts_and_serves(tmp_path):
    port = free_port()
    data_dir = tmp_path / "data"
    env_file = tmp_path / "etc" / "ovation.env"
    env_file.parent.mkdir()
    env_file.write_text(f"OVATION_DATA_DIR={data_dir}\nOVATION_BIND=127.0.0.1:{port}\n"
                        "OVATION_REDIS_URL=owned\nOVATION_FLUSH_INTERVAL_S=0.3\n"
                        "OVATION_SECRET_KEY=unit-test\nOVATION_WEB_WORKERS=2\n")
    layout = Layout(venv=Path(sys.prefix), env_file=env_file, data_dir=data_dir)
    units = render_units(layout)
    shipped = render_units(Layout())
    for name, text in units.items():  # the same commands as the shipped units, paths aside
        if name.endswith(".target"):
            continue
        assert exec_start(text)[-2:] == exec_start(shipped[name])[-2:]
    assert (Path(sys.prefix) / "bin" / "platformctl").exists()

    (data_dir / "redis").mkdir(parents=True)  # what `platformctl install` creates
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OVATION_")},
           "OVATION_ENV_FILE": str(env_file)}
    platformctl = str(layout.platformctl)
    processes: dict[str, subprocess.Popen] = {}
    log = tmp_path / "units.log"
    try:
        processes["redis"] = start_unit(units["ovation-redis.service"], log)
        client = redis.Redis(unix_socket_path=str(data_dir / "redis" / "redis.sock"),
                             decode_responses=True)
        wait_for(lambda: _answers(client), "redis answering on its socket")

        subprocess.run([platformctl, "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([platformctl, "site", "add", "blog", "--origin",
                        f"http://127.0.0.1:{port}"], env=env, check=True, capture_output=True)
        for name in ("flusher", "listener", "notifier", "web"):
            processes[name] = start_unit(units[f"ovation-{name}.service"], log)

        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/readyz", timeout_s=30)
        like = {"path": "/unit", "reaction": "like", "visitor": "visitor-unit-1"}
        response = httpx.post(f"{url}/api/v1/sites/blog/interactions", timeout=10, json=like)
        assert response.status_code == 200, response.text

        database = pw.SqliteDatabase(str(data_dir / "ovation.db"))
        wait_for(lambda: database.execute_sql(
            "SELECT total FROM counter JOIN page ON page.id = counter.page_id "
            "WHERE page.path = '/unit' AND reaction = 'like'").fetchone(),
            "the flusher moving the like to SQL")

        subprocess.run([platformctl, "publish", "--site", "blog", "--path", "/new-post",
                        "--title", "New"], env=env, check=True, capture_output=True)
        wait_for(lambda: database.execute_sql(
            "SELECT published_at FROM page WHERE path = '/new-post'").fetchone(),
            "the listener storing the published post")

        def notifier_consumes():
            try:
                groups = client.xinfo_groups("ov:stream:notifications")
            except redis.ResponseError:
                return False
            return any(group["name"] == "notifier" and group["consumers"] >= 1
                       for group in groups)

        wait_for(notifier_consumes, "the notifier joining its consumer group")
        for name, process in processes.items():
            assert process.poll() is None, f"{name} died: {log.read_text()[-2000:]}"
    finally:
        for name in ("web", "notifier", "listener", "flusher", "redis"):
            process = processes.get(name)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)  # what systemd sends (KillSignal=SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    for name, process in processes.items():
        assert process.returncode == 0, f"{name} exited {process.returncode}: " \
                                         f"{log.read_text()[-2000:]}"


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def test_repository_root_is_not_needed_by_the_units():
    # The units run with cwd=/ (systemd's default): nothing may depend on the checkout.
    assert "WorkingDirectory" not in "".join(render_units(Layout()).values())
    assert REPO.exists()
