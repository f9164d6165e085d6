"""`platformctl up` as a benchmark target: started pinned, with limits that let one load
generator through, and its web worker's memory readable.

The gateway's rate limits stay on (their Redis script is part of every request's cost) but are
raised far above what one loopback client sends: with Ovation's defaults a single load
generator, one IP, would be refused after a few hundred requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO, clean_environment, free_port, log

SITE = "demo"
BENCH_LIMITS = {
    "OVATION_RATE_INTERACTIONS_PER_MIN": "1000000",
    "OVATION_RATE_INTERACTIONS_PER_VISITOR_PER_MIN": "1000000",
    "OVATION_RATE_READS_PER_MIN": "1000000",
    "OVATION_COMMENT_RATE_LIMIT": "10000",
    "OVATION_COMMENT_RATE_WINDOW_S": "1",
    "OVATION_WS_CONNECTIONS_PER_IP": "100000",
    "OVATION_WS_MESSAGES_PER_S": "10000",
}


@dataclass
class Up:
    process: subprocess.Popen
    url: str
    data_dir: Path
    log_path: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + f"/api/v1/sites/{SITE}/live"

    @property
    def redis_socket(self) -> Path:
        return self.data_dir / "redis" / "redis.sock"

    def web_pids(self) -> list[int]:
        """The web server's processes (`serve web` and any Hypercorn worker it forks)."""
        tree = descendants(self.process.pid)
        web = [pid for pid in tree if b"web" in cmdline(pid).split(b"\0")]
        return sorted({pid for root in web for pid in [root, *descendants(root)]})

    def web_rss_kb(self) -> int:
        return sum(rss_kb(pid) for pid in self.web_pids())


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class ServerCpu:
    """CPU seconds of `up` and all its children (web, Redis, workers) around each load: the
    WebSocket clients are Python and share the client core, so requests per second may show
    the clients' limit; CPU per request shows the server's own cost."""

    def __init__(self, root_pid: int) -> None:
        self.pids = [root_pid, *descendants(root_pid)]
        self.roles = {pid: role_of(pid, root_pid) for pid in self.pids}

    def total(self) -> float:
        return sum(process_cpu_s(pid) for pid in self.pids)

    def by_role(self) -> dict[str, float]:
        """CPU seconds so far of each kind of process: web, redis, listener, flusher..."""
        used: dict[str, float] = {}
        for pid in self.pids:
            used[self.roles[pid]] = used.get(self.roles[pid], 0.0) + process_cpu_s(pid)
        return used

    def measure(self, load, count_of):
        """(the load's result, server CPU µs per request)."""
        result, per_role = self.measure_by_role(load, count_of)
        return result, sum(per_role.values())

    def measure_by_role(self, load, count_of):
        """(the load's result, {role: server CPU µs per request})."""
        before = self.by_role()
        result = load()
        after = self.by_role()
        count = count_of(result)
        return result, {role: (after[role] - before.get(role, 0.0)) / count * 1e6
                        for role in after} if count else {}


def role_of(pid: int, root_pid: int) -> str:
    """`web`, `listener`, `flusher`, `redis`... for a process of `up` (its `serve` argument;
    a Hypercorn worker forked by `serve web` counts as web)."""
    argv = [part.decode(errors="replace") for part in cmdline(pid).split(b"\0") if part]
    if "serve" in argv and argv.index("serve") + 1 < len(argv):
        return argv[argv.index("serve") + 1]
    if any("redis-server" in part for part in argv):
        return "redis"
    return "up" if pid == root_pid else "web"


@contextlib.contextmanager
def running_up(core: int, extra_env: dict[str, str] | None = None,
               keep: bool = False) -> Iterator[Up]:
    work = Path(tempfile.mkdtemp(prefix="ovation-bench-"))
    data_dir, log_path, port = work / "data", work / "up.log", free_port()
    env = {**clean_environment(), "PYTHONUNBUFFERED": "1", **BENCH_LIMITS, **(extra_env or {})}
    argv = ["taskset", "-c", str(core), sys.executable, "-m", "cli", "up",
            "--data-dir", str(data_dir), "--port", str(port), "--workers", "1"]
    with open(log_path, "ab") as output:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    up = Up(process, f"http://127.0.0.1:{port}", data_dir, log_path)
    try:
        wait_ready(up, 60)
        log(f"`platformctl up` ready (pid {process.pid}, core {core}, data in {work})")
        yield up
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def wait_ready(up: Up, timeout_s: float) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if up.process.poll() is not None:
            raise RuntimeError(f"`platformctl up` exited with {up.process.returncode}:\n"
                               f"{up.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(up.url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"`platformctl up` not ready within {timeout_s} s")


def http_json(method: str, url: str, body: object | None = None,
              timeout: float = 30) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
