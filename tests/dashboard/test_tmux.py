"""End to end: `platformctl dashboard` in a real terminal (tmux) against a running `platformctl up`,
reading the screen while traffic arrives over HTTP."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import peewee as pw
import pytest

from appliance.storage.database import open_database
from tests.cli.test_up import interact, start_up
from tests.conftest import REPO, free_port, wait_http
from tests.dashboard.conftest import HOSTILE_NAME, HOSTILE_TEXT, add_comment

SGR = re.compile(r"\x1b\[[0-9;:]*m")


class Terminal:
    """A detached tmux session on a private tmux server (its own socket name)."""

    def __init__(self, command: str, width: int = 160, height: int = 50) -> None:
        if not shutil.which("tmux"):
            pytest.fail("tmux is not installed: run ./install.sh --test")
        self.tmux = ["tmux", "-L", f"ovation-test-{os.getpid()}"]
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("OVATION_", "TMUX"))}
        subprocess.run([*self.tmux, "-f", "/dev/null", "new-session", "-d", "-s", "dash",
                        "-x", str(width), "-y", str(height), command],
                       check=True, cwd=REPO, env=env)

    def screen(self, escapes: bool = False) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p", "-t", "dash",
                               *(["-e"] if escapes else [])],
                              capture_output=True, text=True, check=True).stdout

    def wait_for(self, condition: Callable[[str], object], timeout_s: float = 20.0) -> str:
        deadline = time.monotonic() + timeout_s
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if condition(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"the screen never showed what was expected:\n{screen}")

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", "dash", *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def store_hostile_comment(path) -> None:
    """Insert a comment full of terminal escapes, retrying while the flusher holds the file
    (a deferred SQLite transaction that must upgrade to a write lock is refused at once)."""
    database = open_database(f"sqlite:///{path}")
    try:
        for _attempt in range(50):
            try:
                add_comment(database, "f" * 32, site="demo", path="/e2e-page",
                            body=HOSTILE_TEXT, author=HOSTILE_NAME, status="pending")
                return
            except pw.OperationalError:
                time.sleep(0.1)
        raise AssertionError("the SQLite file stayed locked")
    finally:
        database.close()


def today_views(screen: str) -> str | None:
    match = re.search(r"│ view\s+\S+/s\s+\S+\s+([\d,]+) │", screen)
    return match.group(1) if match else None


def test_the_dashboard_follows_live_traffic_and_shows_comments_inert(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    terminal = None
    with open(tmp_path / "up.log", "ab") as log:
        up = start_up(data_dir, port, log)
        try:
            wait_http(url + "/readyz", timeout_s=40)
            # As a new user runs it: no --url; the dashboard finds where this `up` (started
            # on a port of its own) listens.
            terminal = Terminal(f"{sys.executable} -m cli --data-dir {data_dir} dashboard; "
                                "echo DASHBOARD-EXITED $?; sleep 60")
            screen = terminal.wait_for(lambda s: "Services" in s and "web (HTTP)" in s)
            assert "/e2e-page" not in screen and today_views(screen) is None
            assert f"Ovation dashboard {url} " in screen
            # Probed every few seconds: a busy host may answer the first probe late.
            terminal.wait_for(lambda s: re.search(r"│ web \(HTTP\)\s+ok\s+\d", s))

            for index in range(25):
                interact(url, {"path": "/e2e-page", "reaction": "view",
                               "visitor": f"visitor-e2e-{index:03d}"})
            screen = terminal.wait_for(lambda s: re.search(r"demo /e2e-page\s+25 │", s))
            assert today_views(screen) == "25"
            assert re.search(r"visitors today 25\b", screen)
            for index in range(5):
                interact(url, {"path": "/e2e-page", "reaction": "view",
                               "visitor": f"visitor-more-{index:03d}"})
            screen = terminal.wait_for(lambda s: today_views(s) == "30")

            # Terminal escapes straight into SQL, as if an older version or another tool had
            # stored them; rich markup through the public API.
            store_hostile_comment(data_dir / "ovation.db")
            response = httpx.post(f"{url}/api/v1/sites/demo/comments", json={
                "path": "/e2e-page", "body": "[red]markup[/red] [link=https://evil.example]x",
                "visitor": "visitor-commenter", "author_name": "[bold]Eve[/bold]"}, timeout=10)
            assert response.status_code == 202, response.text
            screen = terminal.wait_for(lambda s: "[red]markup[/red]" in s
                                       and "\\x1b[31mred" in s, timeout_s=20)
            assert "[bold]Eve[/bold]" in screen
            assert "1 awaiting moderation" in screen
            coloured = SGR.sub("", terminal.screen(escapes=True))
            assert "\x1b" not in coloured  # tmux saw no sequence but the colours rich chose

            terminal.keys("q")
            screen = terminal.wait_for(lambda s: "DASHBOARD-EXITED 0" in s)
            assert "Services" not in screen  # the alternate screen is gone: terminal restored
        finally:
            if terminal is not None:
                terminal.close()
            up.send_signal(signal.SIGINT)
            assert up.wait(60) == 0


def test_ctrl_c_quits_and_a_resize_redraws(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    terminal = None
    with open(tmp_path / "up.log", "ab") as log:
        up = start_up(data_dir, port, log)
        try:
            wait_http(url + "/readyz", timeout_s=40)
            terminal = Terminal(f"{sys.executable} -m cli --data-dir {data_dir} dashboard "
                                f"--url {url}; echo DASHBOARD-EXITED $?; sleep 60")
            screen = terminal.wait_for(lambda s: "Storage" in s)
            assert max(len(line) for line in screen.splitlines()) > 150
            subprocess.run([*terminal.tmux, "resize-window", "-t", "dash", "-x", "90", "-y",
                            "30"], check=True)
            # One column now: the Interactions panel spans the whole (narrower) width.
            terminal.wait_for(lambda s: re.search(r"^╭─ Interactions ─+╮$", s, re.MULTILINE)
                              and max(len(line.rstrip()) for line in s.splitlines()) == 90)
            terminal.keys("C-c")
            terminal.wait_for(lambda s: "DASHBOARD-EXITED 0" in s)
        finally:
            if terminal is not None:
                terminal.close()
            up.send_signal(signal.SIGINT)
            assert up.wait(60) == 0
