"""Runs a set of child processes in the foreground, restarts any that dies, stops them in order.

Children run in their own sessions, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops them in the order that loses nothing: web first (no new interactions), then
the stream workers, then the flusher (whose last flush needs Redis), then Redis. Each child
also gets SIGTERM from the kernel if the supervisor itself dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("ovation.up")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stop_timeout_s: float = 20.0
    ready: Callable[[subprocess.Popen], None] | None = None  # blocks until the child is usable
    log_file: Path | None = None


@dataclass
class _Child:
    spec: ProcessSpec
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0
    enabled: bool = False  # started once; from then on kept running until stop_all
    total_restarts: int = 0  # never reset, unlike `restarts` (the backoff's count); for status


class Supervisor:
    """Start order is the list order; stop order is its reverse."""

    def __init__(self, specs: list[ProcessSpec], state_file: Path | None = None,
                 state_extra: dict | None = None) -> None:
        self._children = [_Child(spec) for spec in specs]
        self._state_file = state_file
        self._state_extra = state_extra or {}  # written into the state file as they are
        self.stop_event = threading.Event()

    def start_some(self, names: list[str]) -> None:
        """Start these children (in list order of the specs) and keep them running."""
        for child in self._children:
            if child.spec.name in names and not child.enabled:
                if self.stop_event.is_set():
                    return
                child.enabled = True
                self._spawn(child)
        self._write_state()

    def watch(self, poll_s: float = 0.2) -> None:
        """Restart children that die, until `stop_event` is set."""
        while not self.stop_event.wait(poll_s):
            now = time.monotonic()
            changed = False
            for child in self._children:
                if not child.enabled:
                    continue
                process = child.process
                if process is not None and process.poll() is not None:
                    uptime = now - child.started_at
                    # Back off when a child keeps crashing right after start.
                    delay = 0.5 if uptime > 30 else min(0.5 * 2 ** child.restarts, 30.0)
                    log.warning("%s exited with %s after %.1f s; restarting in %.1f s",
                                child.spec.name, process.returncode, uptime, delay)
                    child.process = None
                    child.total_restarts += 1
                    child.restarts = child.restarts + 1 if uptime <= 30 else 0
                    child.next_start = now + delay
                if child.process is None and now >= child.next_start:
                    try:
                        self._spawn(child)
                        changed = True
                    except Exception as exc:
                        log.error("%s failed to start: %s", child.spec.name, exc)
                        child.next_start = now + 5
            if changed:
                self._write_state()

    def stop_all(self) -> None:
        self.stop_event.set()
        for child in reversed(self._children):
            process = child.process
            if process is None or process.poll() is not None:
                continue
            log.info("stopping %s (pid %d)", child.spec.name, process.pid)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(child.spec.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", child.spec.name,
                            child.spec.stop_timeout_s)
                process.kill()
                process.wait()
        if self._state_file is not None:
            self._state_file.unlink(missing_ok=True)

    def pids(self) -> dict[str, int | None]:
        return {child.spec.name: child.process.pid if child.process else None
                for child in self._children}

    def _spawn(self, child: _Child) -> None:
        spec = child.spec
        output = None
        if spec.log_file is not None:
            spec.log_file.parent.mkdir(parents=True, exist_ok=True)
            output = open(spec.log_file, "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, **spec.env}
        try:
            child.process = subprocess.Popen(
                spec.argv, env=env, start_new_session=True, preexec_fn=_die_with_parent,
                stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        finally:
            if output is not None:
                output.close()
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", spec.name, child.process.pid)
        if spec.ready is not None:
            spec.ready(child.process)

    def _write_state(self) -> None:
        if self._state_file is None:
            return
        state = {**self._state_extra, "supervisor_pid": os.getpid(), "updated_at": time.time(),
                 "processes": self.pids(),
                 "restarts": {child.spec.name: child.total_restarts for child in self._children}}
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_file)
