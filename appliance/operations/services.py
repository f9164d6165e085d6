"""What each Ovation process is doing right now, from systemd or from a running `platformctl up`.

`service_states(settings)` is the one question `platformctl status` and the dashboard ask. Under
systemd (PID 1) the answer comes from `systemctl show`; otherwise from the `up` supervisor's
DATA_DIR/up.json plus /proc. Either way every service appears once, in start order, so a
missing process shows as "inactive" rather than vanishing from the table.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.settings import Settings
from appliance.supervision.up import PROCESS_NAMES, read_state

UNIT_PREFIX = "ovation-"
TARGET = "ovation.target"
SYSTEMD_RUNTIME_DIR = Path("/run/systemd/system")  # exists only when systemd is PID 1

# Normalised states (systemd's ActiveState vocabulary, which `up` is mapped onto).
ACTIVE = "active"
INACTIVE = "inactive"
FAILED = "failed"


@dataclass(frozen=True)
class ServiceState:
    """One Ovation process as seen from outside it."""

    name: str  # web, flusher, listener, notifier, redis
    state: str  # active, activating, deactivating, inactive, failed
    pid: int | None
    uptime_s: float | None
    memory_bytes: int | None  # resident memory of the process and its children
    restarts: int | None  # restarts since install (systemd) or since `up` started
    source: str = "none"  # "systemd", "up" or "none" (nothing runs it)

    @property
    def running(self) -> bool:
        return self.state == ACTIVE

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def service_names(settings: Settings) -> list[str]:
    """The services this configuration runs, in start order (Redis first when owned)."""
    return (["redis"] if settings.owns_redis else []) + list(PROCESS_NAMES)


def unit_name(service: str) -> str:
    return f"{UNIT_PREFIX}{service}.service"


def systemd_running() -> bool:
    """True when systemd is the init system (the test sd_booted() makes)."""
    return SYSTEMD_RUNTIME_DIR.is_dir()


def service_states(settings: Settings) -> list[ServiceState]:
    """Every service's state: from a `platformctl up` running in the data directory, else
    from systemd when it runs, else all inactive.

    A running `up` comes first because systemd is PID 1 on most laptops too: asked there,
    systemd would call every (never installed) unit inactive while `up` serves, and `restore`
    would then replace the database under a running appliance.
    """
    names = service_names(settings)
    if read_up_state(settings.data_dir) is None and systemd_running():
        return _from_systemd(names)
    return _from_up(settings.data_dir, names)


# systemd ---------------------------------------------------------------------------------------

_SHOW_PROPERTIES = ("Id", "ActiveState", "MainPID", "ActiveEnterTimestampMonotonic",
                    "MemoryCurrent", "NRestarts")


def _from_systemd(names: list[str]) -> list[ServiceState]:
    units = [unit_name(name) for name in names]
    try:
        output = subprocess.run(
            ["systemctl", "show", "--property=" + ",".join(_SHOW_PROPERTIES), *units],
            capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        output = ""
    return states_from_show(names, output, time.monotonic_ns() // 1000)


def states_from_show(names: list[str], output: str, now_us: int) -> list[ServiceState]:
    """The services' states from `systemctl show` output; `now_us` is CLOCK_MONOTONIC, the
    clock of ActiveEnterTimestampMonotonic."""
    by_unit = {block.get("Id", ""): block for block in parse_systemctl_show(output)}
    units = [unit_name(name) for name in names]
    states = []
    for name, unit in zip(names, units, strict=True):
        block = by_unit.get(unit, {})
        state = block.get("ActiveState") or INACTIVE
        pid = _positive_int(block.get("MainPID"))
        entered = _positive_int(block.get("ActiveEnterTimestampMonotonic"))
        uptime = (now_us - entered) / 1e6 if state == ACTIVE and entered else None
        memory = _positive_int(block.get("MemoryCurrent"))
        if memory is not None and memory >= 2 ** 63:
            memory = None  # UINT64_MAX: older systemd's "no memory accounting"
        if memory is None and pid is not None:
            memory = process_tree_rss(pid)
        states.append(ServiceState(name, state, pid, uptime, memory,
                                   _int_or_none(block.get("NRestarts")), "systemd"))
    return states


def parse_systemctl_show(output: str) -> list[dict[str, str]]:
    """`systemctl show` prints one KEY=VALUE block per unit, blocks separated by blank lines."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in output.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, _, value = line.partition("=")
        current[key] = value
    if current:
        blocks.append(current)
    return blocks


# platformctl up --------------------------------------------------------------------------------

def read_up_state(data_dir: Path) -> dict[str, Any] | None:
    """The state file of an `up` instance that is actually running in `data_dir`, else None."""
    state = read_state(data_dir)
    if not isinstance(state, dict):
        return None
    supervisor = _positive_int(state.get("supervisor_pid"))
    if supervisor is None or not pid_alive(supervisor):
        return None  # a stale file left by a killed supervisor
    return state


def _from_up(data_dir: Path, names: list[str]) -> list[ServiceState]:
    state = read_up_state(data_dir)
    if state is None:
        return [ServiceState(name, INACTIVE, None, None, None, None, "none") for name in names]
    pids = state.get("processes") or {}
    restarts = state.get("restarts") or {}
    results = []
    for name in names:
        pid = _positive_int(pids.get(name))
        if pid is None or not pid_alive(pid):
            # The supervisor restarts dead children: between death and restart it is failed.
            results.append(ServiceState(name, FAILED if pid else INACTIVE, None, None, None,
                                        _int_or_none(restarts.get(name)), "up"))
            continue
        results.append(ServiceState(name, ACTIVE, pid, process_uptime_s(pid),
                                    process_tree_rss(pid), _int_or_none(restarts.get(name)),
                                    "up"))
    return results


# /proc -----------------------------------------------------------------------------------------

def pid_alive(pid: int) -> bool:
    """True for a live process (a zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return _stat_fields(stat)[0] != "Z"


def process_uptime_s(pid: int) -> float | None:
    try:
        fields = _stat_fields(Path(f"/proc/{pid}/stat").read_text())
        boot_uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    started_ticks = int(fields[19])  # field 22 of stat, counted from the state field (3)
    return max(0.0, boot_uptime - started_ticks / os.sysconf("SC_CLK_TCK"))


def process_tree_rss(pid: int) -> int | None:
    """Resident memory of `pid` and all its descendants (Hypercorn's workers are children)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields((entry / "stat").read_text())[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    total, seen, queue = 0, set(), [pid]
    found = False
    while queue:
        current = queue.pop()
        if current in seen:
            continue
        seen.add(current)
        rss = _rss_bytes(current)
        if rss is not None:
            total += rss
            found = True
        queue.extend(parents.get(current, []))
    return total if found else None


def _rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _stat_fields(stat: str) -> list[str]:
    """Fields after the command name, which may itself hold spaces and parentheses."""
    return stat[stat.rindex(")") + 2:].split()


def _positive_int(value: Any) -> int | None:
    number = _int_or_none(value)
    return number if number is not None and number > 0 else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
