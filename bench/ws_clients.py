"""WebSocket load: client processes pinned to the client core, each holding many connections.

Each worker is its own process (`multiprocessing`, spawn) running one asyncio loop; the parent
talks to it over a Pipe with small commands, so N connections spread over P processes behave
like N browsers rather than one Python loop that would itself be the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

OPEN_CONCURRENCY = 50  # handshakes in flight per worker


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _open(url: str, count: int, compression: bool) -> list:
    import websockets

    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one():
        async with gate:
            socket = await websockets.connect(
                url, compression="deflate" if compression else None, max_queue=None,
                ping_interval=None, open_timeout=60)
            hello = json.loads(await socket.recv())
            assert hello["type"] == "hello", hello
            return socket

    return await asyncio.gather(*(one() for _ in range(count)))


# -- fan-out: subscribe, then time every `totals` frame ------------------------------------------

async def _fanout(pipe: Connection, url: str, count: int, path: str, compression: bool) -> None:
    sockets = await _open(url, count, compression)
    for socket in sockets:
        await socket.send(json.dumps({"type": "subscribe", "paths": [path]}))
    for socket in sockets:
        while json.loads(await socket.recv())["type"] != "subscribed":
            pass
    # marker (the page's like total) -> [connections that received it, latest, earliest arrival]
    arrivals: dict[int, list] = {}

    async def listen(socket) -> None:
        async for raw in socket:
            frame = json.loads(raw)
            if frame.get("type") == "totals":
                now = time.time()
                entry = arrivals.setdefault(int(frame["totals"].get("like", 0)), [0, 0.0, now])
                entry[0] += 1
                entry[1] = max(entry[1], now)
                entry[2] = min(entry[2], now)

    tasks = [asyncio.create_task(listen(socket)) for socket in sockets]
    pipe.send(("ready", len(sockets)))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, pipe.recv)  # "report"
    pipe.send(("arrivals", {k: tuple(v) for k, v in arrivals.items()}))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)


# -- interactions over the socket: closed loop, one message in flight per connection --------

async def _interact(pipe: Connection, url: str, count: int, duration_s: float, pages: int,
                    seed: int) -> None:
    import random

    sockets = await _open(url, count, compression=False)
    rng = random.Random(seed)
    pipe.send(("ready", len(sockets)))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, pipe.recv)  # "go"
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + duration_s
    kinds = ("view", "view", "like", "applause")

    async def drive(socket, number: int) -> None:
        sent = 0
        while time.monotonic() < deadline:
            sent += 1
            message = {"type": "interact", "id": f"{number}-{sent}",
                       "path": f"/bench/post-{rng.randint(1, pages):04d}/",
                       "reaction": rng.choice(kinds), "amount": 1,
                       "visitor": f"bench-{rng.randint(1, 10**9):09d}"}
            started = time.perf_counter()
            await socket.send(json.dumps(message))
            while True:
                frame = json.loads(await socket.recv())
                if frame.get("type") in ("result", "error"):
                    break
            latencies.append(time.perf_counter() - started)
            if frame["type"] == "error":
                errors[frame["code"]] = errors.get(frame["code"], 0) + 1

    started = time.monotonic()
    await asyncio.gather(*(drive(socket, n) for n, socket in enumerate(sockets)))
    elapsed = time.monotonic() - started
    pipe.send(("done", {"latencies": latencies, "errors": errors, "elapsed": elapsed}))
    await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)


# -- one subscriber that times `comment` frames by comment id ------------------------------

async def _comment_watch(pipe: Connection, url: str, count: int, path: str) -> None:
    sockets = await _open(url, count, compression=False)
    for socket in sockets:
        await socket.send(json.dumps({"type": "subscribe", "paths": [path]}))
    for socket in sockets:
        while json.loads(await socket.recv())["type"] != "subscribed":
            pass
    arrivals: dict[str, float] = {}

    async def listen(socket) -> None:
        async for raw in socket:
            frame = json.loads(raw)
            if frame.get("type") == "comment":
                key = frame["comment"]["id"]
                arrivals[key] = max(arrivals.get(key, 0.0), time.time())

    tasks = [asyncio.create_task(listen(socket)) for socket in sockets]
    pipe.send(("ready", len(sockets)))
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    pipe.send(("arrivals", arrivals))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)


def _worker(kind: str, core: int, pipe: Connection, args: tuple) -> None:
    os.sched_setaffinity(0, {core})
    _raise_fd_limit()
    target = {"fanout": _fanout, "interact": _interact, "comments": _comment_watch}[kind]
    try:
        asyncio.run(target(pipe, *args))
    except Exception as exc:  # report to the parent rather than hang it
        pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise


@dataclass
class Workers:
    processes: list
    pipes: list[Connection]

    def expect(self, what: str, timeout_s: float = 120) -> list:
        answers = []
        for pipe in self.pipes:
            if not pipe.poll(timeout_s):
                raise RuntimeError(f"a WebSocket worker did not answer {what!r} in time")
            tag, value = pipe.recv()
            if tag != what:
                raise RuntimeError(f"a WebSocket worker answered {tag}: {value}")
            answers.append(value)
        return answers

    def send(self, message: str) -> None:
        for pipe in self.pipes:
            pipe.send(message)

    def join(self) -> None:
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.kill()


def start_workers(kind: str, core: int, per_worker: list[tuple]) -> Workers:
    context = multiprocessing.get_context("spawn")
    processes, pipes = [], []
    for args in per_worker:
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(kind, core, child, args), daemon=True)
        process.start()
        processes.append(process)
        pipes.append(parent)
    return Workers(processes, pipes)


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]
