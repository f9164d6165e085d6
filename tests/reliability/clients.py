"""The interaction part of the load, and the ledger of what was acknowledged to the clients.

One `Clients` object serves the clients of one process: the load's client processes
(tests/reliability/client_processes.py) each have one, and so has the runner, for its canaries
and the final views. Each keeps its own `Ledger`; the runner merges them at the end.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter as Tally
from dataclasses import dataclass, field

import httpx
import websockets

SITE = "blog"
ORIGIN = "https://blog.example"
HEADERS = {"Origin": ORIGIN}
PATHS = [f"/posts/{n}" for n in range(8)]  # already normalised
CANARY = "/canary"


@dataclass
class Ledger:
    acknowledged: Tally = field(default_factory=Tally)  # (path, reaction) -> sum of applied
    low: Tally = field(default_factory=Tally)  # unanswered requests: least they could add
    high: Tally = field(default_factory=Tally)  # ... and most
    operations: int = 0
    unanswered: int = 0
    comments: set[str] = field(default_factory=set)
    comment_tokens: set[str] = field(default_factory=set)
    statuses: Tally = field(default_factory=Tally)

    def ack(self, path: str, reaction: str, applied: int) -> None:
        self.acknowledged[(path, reaction)] += applied
        self.operations += 1

    def unknown(self, body: dict) -> None:
        """The request may have been applied: it may add anything its rule allows."""
        self.unanswered += 1
        key = (body["path"], body["reaction"])
        if body["reaction"] == "like" and body["action"] == "remove":
            self.low[key] -= 1
        else:
            self.high[key] += body.get("amount", 1)

    def merge(self, other: Ledger) -> None:
        """Another process's ledger into this one. Counter deltas and their ranges add up
        (each request was answered to one client only), comment ids are unique."""
        self.acknowledged.update(other.acknowledged)
        self.low.update(other.low)  # Counter.update adds, negative counts included
        self.high.update(other.high)
        self.operations += other.operations
        self.unanswered += other.unanswered
        self.comments |= other.comments
        self.comment_tokens |= other.comment_tokens
        self.statuses.update(other.statuses)


def interaction(rng: random.Random, client: int) -> dict:
    reaction = rng.choice(["view", "like", "like", "applause", "applause"])
    return {
        "path": rng.choice(PATHS),
        "reaction": reaction,
        "visitor": f"visitor-{client:02d}-{rng.randrange(6)}",
        "action": rng.choice(["add", "remove"]) if reaction == "like" else "add",
        "amount": rng.randrange(1, 10) if reaction == "applause" else 1,
    }


class Clients:
    """The HTTP and WebSocket interaction clients of one process, and its ledger.

    A client's random choices come from the scenario's seed and the client's number. The
    numbers are shared out among the processes (process i runs the numbers n with
    n % processes == i), so a seed makes the same load whatever the number of processes, and
    every visitor belongs to one process.
    """

    def __init__(self, urls: list[str], seed: int) -> None:
        self.urls = urls
        self.seed = seed
        self.ledger = Ledger()
        self.errors: list[str] = []
        self.stop = asyncio.Event()  # the load is over: each client ends after its request
        self.last_failure = ""  # the last failed interaction, for a recovery that never comes

    async def http_client(self, number: int) -> None:
        rng = random.Random(self.seed * 100 + number)
        async with httpx.AsyncClient(timeout=5) as http:
            while not self.stop.is_set():
                body = interaction(rng, number)
                await self.send_interaction(http, rng.choice(self.urls), body)
                await asyncio.sleep(0.005)

    async def send_interaction(self, http: httpx.AsyncClient, url: str, body: dict) -> bool:
        try:
            response = await http.post(
                f"{url}/api/v1/sites/{SITE}/interactions", json=body, headers=HEADERS
            )
        except httpx.HTTPError as exc:
            self.ledger.unknown(body)
            self.ledger.statuses["interaction no answer"] += 1
            self.last_failure = f"{url}: {type(exc).__name__}: {exc}"
            await asyncio.sleep(0.1)
            return False
        self.ledger.statuses[f"interaction {response.status_code}"] += 1
        if response.status_code == 200:
            result = response.json()
            self.ledger.ack(result["path"], body["reaction"], result["applied"])
            return True
        self.last_failure = f"{url}: {response.status_code} {response.text[:300]}"
        if response.status_code >= 500:
            self.ledger.unknown(body)
        else:
            self.errors.append(f"interaction answered {response.status_code}: {response.text}")
        await asyncio.sleep(0.1)
        return False

    async def ws_client(self, number: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        while not self.stop.is_set():
            url = rng.choice(self.urls).replace("http", "ws")
            body = None
            try:
                async with websockets.connect(
                    f"{url}/api/v1/sites/{SITE}/live", origin=ORIGIN, open_timeout=3
                ) as ws:
                    await asyncio.wait_for(ws.recv(), 3)  # hello
                    budget = rng.randrange(50, 300)  # then a new connection (churn)
                    while not self.stop.is_set() and budget:
                        budget -= 1
                        body = interaction(rng, 50 + number)
                        message_id = uuid.uuid4().hex
                        await ws.send(json.dumps({"type": "interact", "id": message_id, **body}))
                        while True:  # other frames (pushes) may come first
                            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                            if frame.get("id") == message_id:
                                break
                        if frame["type"] == "result":
                            self.ledger.ack(frame["path"], body["reaction"], frame["applied"])
                        elif frame.get("code") == "service_unavailable":
                            self.ledger.unknown(body)
                        else:
                            self.errors.append(f"websocket answered {frame}")
                        body = None
                        await asyncio.sleep(0.005)
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException):
                if body is not None:
                    self.ledger.unknown(body)
                await asyncio.sleep(0.1)
