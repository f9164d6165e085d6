"""The load's clients in several OS processes, each with its own asyncio loop and ledgers.

The runner (tests/reliability/scenario.py) starts the processes ("spawn": a fresh interpreter,
nothing inherited from the runner's loop or sockets), waits until each reports its clients
running, injects its faults, then sets `stop`. Each process then lets its clients finish their
request in progress and sends back what was acknowledged to them (a `Share`, pickled over a
pipe). A process that dies, or does not answer in time, is an error of the run: the runner
never waits for it without a deadline.

Which clients run where: client numbers are shared out round robin (process i runs the numbers
n with n % processes == i), and a client's random choices come from the scenario's seed and its
number. Voters vote on the comments of their own process's authors, so no state is shared
between processes (comment_clients.py).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from tests.reliability.clients import Clients, Ledger
from tests.reliability.comment_clients import CommentLoad
from tests.reliability.comment_ledger import CommentLedger

STOP_POLL_S = 0.05


@dataclass(frozen=True)
class ProcessSpec:
    """What one client process runs: its clients, by number."""

    index: int
    urls: tuple[str, ...]
    seed: int
    edit_window_s: float
    http: tuple[int, ...] = ()
    ws: tuple[int, ...] = ()
    authors: tuple[int, ...] = ()
    voters: tuple[int, ...] = ()


@dataclass
class Share:
    """What one client process's clients were told, sent to the runner at the end."""

    index: int
    ledger: Ledger
    comments: CommentLedger
    errors: list[str] = field(default_factory=list)


def share_out(
    processes: int,
    urls: list[str],
    seed: int,
    edit_window_s: float,
    http: int,
    ws: int,
    authors: int,
    voters: int,
) -> list[ProcessSpec]:
    """The clients of each process, round robin. A process with voters needs an author: its
    voters vote on its own authors' comments."""
    specs = []
    for index in range(processes):

        def mine(count: int, index: int = index) -> tuple[int, ...]:
            return tuple(range(index, count, processes))

        spec = ProcessSpec(
            index,
            tuple(urls),
            seed,
            edit_window_s,
            mine(http),
            mine(ws),
            mine(authors),
            mine(voters),
        )
        if spec.voters and not spec.authors:
            raise ValueError(
                f"client process {index} would have voters and no author: "
                f"use at least as many comment clients as processes"
            )
        specs.append(spec)
    return specs


# -- in the client process ----------------------------------------------------------------------


def serve(spec: ProcessSpec, stop: Any, conn: Connection) -> None:
    """The client process: runs its clients until `stop` is set, then sends its Share."""
    # Ctrl-C reaches the whole process group: the runner decides when the load ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        share = asyncio.run(_load(spec, stop, conn))
    except BaseException:  # noqa: BLE001 (reported to the runner, whatever it is)
        conn.send(("failed", traceback.format_exc()))
    else:
        conn.send(("done", share))
    finally:
        conn.close()


async def _load(spec: ProcessSpec, stop: Any, conn: Connection) -> Share:
    clients = Clients(list(spec.urls), spec.seed)
    comments = CommentLoad(clients, spec.edit_window_s)
    tasks = (
        [asyncio.create_task(clients.http_client(n)) for n in spec.http]
        + [asyncio.create_task(clients.ws_client(n)) for n in spec.ws]
        + [asyncio.create_task(comments.author(n)) for n in spec.authors]
        + [asyncio.create_task(comments.voter(n)) for n in spec.voters]
    )
    conn.send(("ready", None))
    # A multiprocessing Event cannot be awaited; polling it costs nothing at this rate.
    while not stop.is_set():
        await asyncio.sleep(STOP_POLL_S)
    clients.stop.set()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            clients.errors.append(
                f"client process {spec.index}: a client failed: "
                + "".join(traceback.format_exception(outcome))
            )
    return Share(spec.index, clients.ledger, comments.ledger, clients.errors)


# -- in the runner ------------------------------------------------------------------------------


class ClientProcesses:
    """The runner's handle on the client processes. Every wait has a deadline; what goes
    wrong (a process that died, failed or did not answer) is collected in `errors`."""

    def __init__(self, specs: list[ProcessSpec]) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self.processes: list[Any] = []
        self.pipes: list[Connection] = []
        self._senders: list[Connection] = []
        for spec in specs:
            receiver, sender = context.Pipe(duplex=False)
            # Daemonic: if the runner exits without `finish` (an error, Ctrl-C), the
            # processes are ended with it.
            self.processes.append(
                context.Process(
                    target=serve,
                    args=(spec, self.stop, sender),
                    daemon=True,
                    name=f"load-clients-{spec.index}",
                )
            )
            self.pipes.append(receiver)
            self._senders.append(sender)
        self.errors: list[str] = []
        self.gone: set[int] = set()  # processes already reported (dead, failed, silent)

    def start(self, timeout_s: float = 120.0) -> None:
        """Start every process and wait until each runs its clients."""
        for process in self.processes:
            process.start()
        for sender in self._senders:
            sender.close()  # the child's copy only: its death then reads as end of file
        self._receive("ready", timeout_s)

    def check(self) -> bool:
        """While the load runs: True if every process still runs (a dead one is an error)."""
        for index, process in enumerate(self.processes):
            if index not in self.gone and not process.is_alive():
                why = f"exit code {process.exitcode}"
                pipe = self.pipes[index]
                try:
                    if pipe.poll():  # it may have said why (a failure, with its traceback)
                        why = f"{why}: {pipe.recv()[1]}"
                except (EOFError, OSError):
                    pass
                self._lost(index, f"client process {index} died during the load ({why})")
        return not self.gone

    def finish(self, timeout_s: float = 60.0) -> list[Share]:
        """Stop the load and collect the processes' shares. Clients end after the request in
        progress (5 s timeouts), so a process that has not answered within `timeout_s` is
        stuck: it is killed and reported."""
        self.stop.set()
        shares = self._receive("done", timeout_s)
        for process in self.processes:
            if process.pid is None:
                continue  # never started (the start failed)
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
        for pipe in self.pipes:
            pipe.close()
        return [shares[index] for index in sorted(shares)]

    def _receive(self, expected: str, timeout_s: float) -> dict[int, Any]:
        waiting = {pipe: index for index, pipe in enumerate(self.pipes) if index not in self.gone}
        got: dict[int, Any] = {}
        deadline = time.monotonic() + timeout_s
        while waiting:
            ready = wait(list(waiting), timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            for pipe in ready:
                index = waiting.pop(pipe)
                try:
                    kind, payload = pipe.recv()
                except (EOFError, OSError):
                    self.processes[index].join(5)
                    self._lost(
                        index,
                        f"client process {index} died (exit code "
                        f"{self.processes[index].exitcode}) before '{expected}'",
                    )
                    continue
                if kind == expected:
                    got[index] = payload
                else:
                    self._lost(index, f"client process {index} failed: {payload}")
        for index in waiting.values():
            self._lost(
                index,
                f"client process {index} did not answer '{expected}' within {timeout_s:.0f} s",
            )
            self.processes[index].kill()  # stuck: not worth waiting for
        return got

    def _lost(self, index: int, message: str) -> None:
        self.gone.add(index)
        self.errors.append(message)
