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
#
# A subscriber only counts frames, and thousands of them share one client core: on the
# `websockets` asyncio API each frame wakes a task per connection, and that client cost, not
# the server's, was most of the spread measured between the first and the last subscriber. So
# subscribers open their connection with websockets' sans-I/O protocol (handshake, extension
# negotiation, the setup messages) straight on an asyncio transport, and once subscribed, if
# the server declined compression, read the server's frames themselves (unmasked, unfragmented
# text frames: a header of 2 or 4 bytes and the payload), one callback per chunk read. With
# compression negotiated they stay on the websockets protocol, which inflates.

BROWSER_HEADERS = [
    ("Pragma", "no-cache"), ("Cache-Control", "no-cache"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/131.0.0.0 Safari/537.36"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"), ("Accept-Language", "en-US,en;q=0.9"),
]


class _Subscriber(asyncio.Protocol):
    def __init__(self, url: str, compression: bool, on_text) -> None:
        from websockets.client import ClientProtocol
        from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
        from websockets.uri import parse_uri

        self.ws = ClientProtocol(parse_uri(url), extensions=(
            enable_client_permessage_deflate(None) if compression else None))
        self.on_text = on_text  # after setup: called with each text message
        self.transport: asyncio.Transport | None = None
        self.setup: list[str] | None = []  # during setup: messages not yet awaited
        self.waiter: asyncio.Future | None = None
        self.opened = asyncio.get_running_loop().create_future()
        self.fragments: list[bytes] = []
        self.raw: bytearray | None = None  # after setup, without compression: unread bytes

    def connection_made(self, transport) -> None:
        self.transport = transport
        request = self.ws.connect()
        # What a browser sends: the server keeps a connection's headers, so they count in the
        # memory measured per connection.
        request.headers["Origin"] = "http://" + request.headers["Host"]
        for name, value in BROWSER_HEADERS:
            request.headers[name] = value
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Opcode
        from websockets.http11 import Response

        if self.raw is not None:
            self._read_raw(data)
            return
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if not self.opened.done():
                    self.opened.set_result(event.status_code)
            elif event.opcode in (Opcode.TEXT, Opcode.CONT):
                self.fragments.append(event.data)
                if event.fin:
                    text = b"".join(self.fragments).decode()
                    self.fragments = []
                    if self.setup is None:
                        self.on_text(text)
                    else:
                        self.setup.append(text)
                        if self.waiter is not None and not self.waiter.done():
                            self.waiter.set_result(None)
        self._flush()  # pongs and close frames the protocol answers on its own

    def connection_lost(self, exc) -> None:
        for future in (self.opened, self.waiter):
            if future is not None and not future.done():
                future.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def next_message(self, timeout_s: float = 60) -> dict:
        """During setup: the next message, parsed."""
        if not self.setup:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.waiter, timeout_s)
            finally:
                self.waiter = None
        return json.loads(self.setup.pop(0))

    def set_up(self) -> None:
        """From now on, every message goes to `on_text`."""
        self.setup = None
        if not self.ws.extensions:  # nothing to inflate: read the frames here
            self.raw = bytearray()

    def _read_raw(self, data: bytes) -> None:
        buffer = self.raw
        buffer += data
        start = 0
        while len(buffer) - start >= 2:
            length, header = buffer[start + 1] & 0x7F, 2
            if length == 126:
                if len(buffer) - start < 4:
                    break
                length, header = int.from_bytes(buffer[start + 2:start + 4], "big"), 4
            elif length == 127:
                if len(buffer) - start < 10:
                    break
                length, header = int.from_bytes(buffer[start + 2:start + 10], "big"), 10
            if len(buffer) - start < header + length:
                break
            if buffer[start] & 0x0F == 1:  # a text frame (the server never fragments them)
                self.on_text(bytes(buffer[start + header:start + header + length]).decode())
            start += header + length
        del buffer[:start]

    def send_json(self, message: dict) -> None:
        self.ws.send_text(json.dumps(message).encode())
        self._flush()

    def _flush(self) -> None:
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _subscribe(url: str, count: int, path: str, compression: bool, on_text) -> list:
    """`count` subscribers to `path`, connected `OPEN_CONCURRENCY` at a time."""
    from websockets.uri import parse_uri

    target = parse_uri(url)
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one() -> _Subscriber:
        async with gate:
            _, subscriber = await loop.create_connection(
                lambda: _Subscriber(url, compression, on_text), target.host, target.port)
            status = await asyncio.wait_for(subscriber.opened, 60)
            assert status == 101, f"handshake answered {status}"
            hello = await subscriber.next_message()
            assert hello["type"] == "hello", hello
            subscriber.send_json({"type": "subscribe", "paths": [path]})
            while (await subscriber.next_message())["type"] != "subscribed":
                pass
            subscriber.set_up()
            return subscriber

    return await asyncio.gather(*(one() for _ in range(count)))


async def _fanout(pipe: Connection, url: str, count: int, path: str, compression: bool) -> None:
    # marker (the page's like total) -> [connections that received it, latest, earliest arrival]
    arrivals: dict[int, list] = {}

    def on_text(text: str) -> None:
        now = time.time()
        if not text.startswith('{"type":"totals"'):
            return
        entry = arrivals.setdefault(int(json.loads(text)["totals"].get("like", 0)),
                                    [0, 0.0, now])
        entry[0] += 1
        entry[1] = max(entry[1], now)
        entry[2] = min(entry[2], now)

    subscribers = await _subscribe(url, count, path, compression, on_text)
    negotiated = sum(1 for subscriber in subscribers if subscriber.ws.extensions)
    pipe.send(("ready", (len(subscribers), negotiated)))
    if negotiated:
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "report"
    else:
        _read_until_report(subscribers, pipe)
    pipe.send(("arrivals", {k: tuple(v) for k, v in arrivals.items()}))
    for subscriber in subscribers:
        subscriber.close()


def _read_until_report(subscribers: list[_Subscriber], pipe: Connection) -> None:
    """Read every subscriber's frames in a plain epoll loop until the parent asks for the
    report: asyncio's machinery per readable socket costs the client core several times what
    reading the frame does, and this process does nothing else meanwhile."""
    import os
    import select

    poller = select.epoll()
    by_fd = {}
    for subscriber in subscribers:
        subscriber.transport.pause_reading()  # the sockets are read here from now on
        fd = subscriber.transport.get_extra_info("socket").fileno()
        poller.register(fd, select.EPOLLIN)
        by_fd[fd] = subscriber
    poller.register(pipe.fileno(), select.EPOLLIN)
    try:
        while True:
            for fd, _ in poller.poll():
                if fd == pipe.fileno():
                    pipe.recv()  # "report"
                    return
                data = os.read(fd, 65536)
                if data:
                    by_fd[fd].data_received(data)
                else:
                    poller.unregister(fd)
    finally:
        poller.close()


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
