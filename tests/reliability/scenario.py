"""One fault-injection scenario: steady mixed load, random crashes, then a ledger check.

Every client records what the appliance acknowledged to it (the `applied` delta of each
interaction answer, the id of each 202 comment, each acknowledged edit, delete and vote). A
request that got no answer (its web was killed, Redis was restarting) was not acknowledged: it
may or may not have been applied, so it widens the allowed range of its counter instead of
being counted. At the end, after a final flush, SQL must hold every acknowledged delta and
comment exactly once, the last acknowledged edit of each comment and vote of each visitor, and
every acknowledged comment must have been notified (e-mail and webhook) under one key.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter as Tally
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets

from appliance.storage.database import open_database
from appliance.storage.models import Comment, Counter, Page
from tests.reliability import notification_fates
from tests.reliability.comment_clients import CommentLoad
from tests.reliability.rig import ORIGIN, OWNER, SITE, Rig

PATHS = [f"/posts/{n}" for n in range(8)]  # already normalised
CANARY = "/canary"
HEADERS = {"Origin": ORIGIN}


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


@dataclass
class Report:
    scenario: str
    faults: Tally
    acknowledged: int
    by_kind: dict[str, int]  # the acknowledged operations by kind
    lost: int
    duplicated: int
    recover_s: list[float]
    unanswered: int
    subscribers_caught_up: str
    notifications: str
    errors: list[str]
    answers: str = ""  # how requests were answered, by kind (for reading, not in the table)
    late: int = 0  # notifications Ovation still held, undelivered, when the run ended

    def row(self) -> str:
        faults = ", ".join(f"{kind} x{n}" for kind, n in sorted(self.faults.items()))
        worst = max(self.recover_s, default=0.0)
        mean = sum(self.recover_s) / len(self.recover_s) if self.recover_s else 0.0
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.by_kind.items())
        recovery = f"{mean:.1f} s mean, {worst:.1f} s worst" if self.recover_s else "-"
        return (f"| {self.scenario} | {faults or 'none'} | {self.acknowledged} ({kinds}) | "
                f"{self.lost} | {self.duplicated} | {recovery} | "
                f"{self.unanswered} | {self.subscribers_caught_up} | {self.notifications} |")


TABLE_HEAD = ("| scenario | faults injected | operations acknowledged | lost | duplicated | "
              "time to recover | unanswered (not acknowledged) | subscribers caught up | "
              "comments notified (redelivered) |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def interaction(rng: random.Random, client: int) -> dict:
    reaction = rng.choice(["view", "like", "like", "applause", "applause"])
    return {"path": rng.choice(PATHS), "reaction": reaction,
            "visitor": f"visitor-{client:02d}-{rng.randrange(6)}",
            "action": rng.choice(["add", "remove"]) if reaction == "like" else "add",
            "amount": rng.randrange(1, 10) if reaction == "applause" else 1}


class Scenario:
    def __init__(self, rig: Rig, seed: int, http_clients: int = 4, ws_clients: int = 3,
                 comment_clients: int = 2, voters: int = 2, subscribers: int = 4,
                 faults: bool = True) -> None:
        self.rig = rig
        self.rng = random.Random(seed)
        self.seed = seed
        self.ledger = Ledger()
        self.comments = CommentLoad(self)
        self.stop = asyncio.Event()
        self.counts = (http_clients, ws_clients, comment_clients, voters, subscribers)
        self.inject_faults = faults
        self.faults: Tally = Tally()
        self.recover_s: list[float] = []
        self.errors: list[str] = []
        self.last_totals: list[dict[str, dict[str, int]]] = [{} for _ in range(subscribers)]
        self.reconnects = 0
        self.sockets = [""] * subscribers  # each subscriber's socket: web, when, frames since
        self.churns = 0  # subscriber reconnections on purpose (connection churn)
        self.last_failure = ""  # the last failed interaction, for a recovery that never comes
        self.late: Tally = Tally()  # undelivered notifications Ovation still holds, by fate

    def web_urls(self) -> list[str]:
        return [self.rig.url("web0"), self.rig.url("web1")]

    # -- clients -----------------------------------------------------------------------------

    async def http_client(self, number: int) -> None:
        rng = random.Random(self.seed * 100 + number)
        async with httpx.AsyncClient(timeout=5) as http:
            while not self.stop.is_set():
                body = interaction(rng, number)
                await self.send_interaction(http, rng.choice(self.web_urls()), body)
                await asyncio.sleep(0.005)

    async def send_interaction(self, http: httpx.AsyncClient, url: str, body: dict) -> bool:
        try:
            response = await http.post(f"{url}/api/v1/sites/{SITE}/interactions", json=body,
                                       headers=HEADERS)
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
            url = rng.choice(self.web_urls()).replace("http", "ws")
            body = None
            try:
                async with websockets.connect(f"{url}/api/v1/sites/{SITE}/live", origin=ORIGIN,
                                              open_timeout=3) as ws:
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

    async def subscriber(self, number: int) -> None:
        """Listens to every page; reconnects (to either web) whenever its socket dies, and on
        purpose every 5-30 s while the load runs (churn, for the memory soak)."""
        rng = random.Random(self.seed * 7 + number)
        seen = self.last_totals[number]
        while True:
            url = rng.choice(self.web_urls()).replace("http", "ws")
            churn_at = time.monotonic() + rng.uniform(5, 30)
            churned = False
            opened, frames = time.monotonic(), 0
            try:
                async with websockets.connect(f"{url}/api/v1/sites/{SITE}/live", origin=ORIGIN,
                                              open_timeout=3) as ws:
                    await asyncio.wait_for(ws.recv(), 3)  # hello
                    await ws.send(json.dumps({"type": "subscribe", "paths": PATHS}))
                    async for raw in ws:
                        frames += 1
                        self.sockets[number] = (f"{url} since {opened:.1f}, {frames} frames, "
                                                f"last at {time.monotonic():.1f}")
                        frame = json.loads(raw)
                        if frame["type"] == "subscribed":
                            for page in frame["pages"]:
                                seen[page["path"]] = page["totals"]
                        elif frame["type"] == "totals":
                            seen[frame["path"]] = frame["totals"]
                        if time.monotonic() > churn_at and not self.stop.is_set():
                            churned = True
                            break
            except asyncio.CancelledError:
                raise
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException):
                pass
            if churned:
                self.churns += 1
            else:
                self.reconnects += 1
            await asyncio.sleep(0.2)

    # -- faults ------------------------------------------------------------------------------

    def fault_kinds(self) -> list[str]:
        kinds = ["web0", "web1", "flusher", "listener", "notifier", "redis"]
        return [*kinds, "postgres"] if self.rig.backend == "postgresql" else kinds

    async def inject(self, kind: str) -> None:
        rig = self.rig
        if kind == "redis":
            await asyncio.to_thread(rig.stop_redis)
            await asyncio.sleep(self.rng.uniform(0.5, 1.5))
            await asyncio.to_thread(rig.start_redis)
        elif kind == "postgres":
            assert rig.postgres is not None
            await asyncio.to_thread(rig.postgres.stop)
            await asyncio.sleep(self.rng.uniform(2.0, 4.0))
            await asyncio.to_thread(rig.postgres.start)
        else:
            await asyncio.to_thread(rig.kill_worker, kind)
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))
            await asyncio.to_thread(rig.start_worker, kind)
            if kind.startswith("web"):
                await asyncio.to_thread(rig.wait_web, kind)
        self.faults[kind] += 1

    async def canary(self, http: httpx.AsyncClient, timeout_s: float = 60.0) -> None:
        """Recovered means: both webs take an interaction and a comment, the flusher writes
        the interaction to SQL, and the listener stores the comment."""
        deadline = time.monotonic() + timeout_s
        visitor = f"canary-{uuid.uuid4().hex[:12]}"
        for url in self.web_urls():
            body = {"path": CANARY, "reaction": "view", "visitor": visitor, "action": "add",
                    "amount": 1}
            while not await self.send_interaction(http, url, body):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{url} did not recover within {timeout_s} s; "
                                         f"last failure: {self.last_failure}")
                body = {**body, "visitor": f"canary-{uuid.uuid4().hex[:12]}"}
        comment_id = None
        while comment_id is None and time.monotonic() < deadline:
            comment_id = await self.comments.post(http, self.rng, 99, [])
        totals: dict[tuple[str, str], int] = {}
        stored: set[str] = set()
        while time.monotonic() < deadline:
            want = self.ledger.acknowledged[(CANARY, "view")]
            try:
                totals, stored = await asyncio.to_thread(self.read_sql)
            except Exception:  # noqa: BLE001 (the database may still be coming back)
                totals, stored = {}, set()
            if totals.get((CANARY, "view"), 0) >= want and comment_id in stored:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the appliance did not recover within {timeout_s} s: comment "
                             f"{comment_id} stored: {comment_id in stored}, "
                             f"canary views in SQL {totals.get((CANARY, 'view'))} of {want}")

    async def fault_loop(self, duration_s: float) -> None:
        """Faults one after another, under load, until `duration_s` has passed and every kind
        has been injected at least once (in a seeded random order, each round)."""
        if not self.inject_faults:  # steady load only (the memory soak)
            await asyncio.sleep(duration_s)
            return
        kinds = self.fault_kinds()
        order: list[str] = []
        async with httpx.AsyncClient(timeout=5) as http:
            started = time.monotonic()
            while time.monotonic() - started < duration_s or len(self.faults) < len(kinds):
                if not order:
                    order = self.rng.sample(kinds, len(kinds))
                await asyncio.sleep(self.rng.uniform(0.5, 1.5))  # load without faults
                kind = order.pop()
                began = time.monotonic()
                await self.inject(kind)
                await self.canary(http)
                self.recover_s.append(time.monotonic() - began)

    # -- verification ------------------------------------------------------------------------

    def read_sql(self) -> tuple[dict[tuple[str, str], int], set[str]]:
        assert self.rig.settings is not None
        database = open_database(self.rig.settings.effective_database_url)
        try:
            with database.connection_context():
                totals = {(path, reaction): total for path, reaction, total in
                          Counter.select(Page.path, Counter.reaction, Counter.total)
                          .join(Page).tuples()}
                stored = {row for (row,) in Comment.select(Comment.id).tuples()}
            return totals, stored
        finally:
            database.close()

    def comment_bodies(self) -> list[str]:
        assert self.rig.settings is not None
        database = open_database(self.rig.settings.effective_database_url)
        try:
            with database.connection_context():
                return [body for (body,) in Comment.select(Comment.body_markdown).tuples()]
        finally:
            database.close()

    async def run(self, name: str, duration_s: float) -> Report:
        http_n, ws_n, comment_n, voter_n, sub_n = self.counts
        subscribers = [asyncio.create_task(self.subscriber(n)) for n in range(sub_n)]
        clients = ([asyncio.create_task(self.http_client(n)) for n in range(http_n)]
                   + [asyncio.create_task(self.ws_client(n)) for n in range(ws_n)]
                   + [asyncio.create_task(self.comments.author(n)) for n in range(comment_n)]
                   + [asyncio.create_task(self.comments.voter(n)) for n in range(voter_n)])
        try:
            await self.fault_loop(duration_s)
        finally:
            self.stop.set()
            await asyncio.gather(*clients)
        caught_up = await self.check_subscribers(subscribers)
        lost, duplicated = await self.settle_and_compare()
        return Report(name, self.faults, self.ledger.operations, self.by_kind(), lost,
                      duplicated, self.recover_s, self.ledger.unanswered, caught_up,
                      self.notifications(), self.errors,
                      ", ".join(f"{k}: {n}" for k, n in sorted(self.ledger.statuses.items())),
                      sum(self.late.values()))

    def notifications(self) -> str:
        summary = self.rig.receivers.summary(self.ledger.comments)
        if not self.late:
            return summary
        return summary + "; late (still in Ovation): " + ", ".join(
            f"{n} {fate}" for fate, n in sorted(self.late.items()))

    def by_kind(self) -> dict[str, int]:
        changes = self.comments.ledger
        kinds = {"comments": len(self.ledger.comments), "edits": changes.edits,
                 "deletes": changes.deletes, "votes": changes.votes_acknowledged}
        return {"interactions": self.ledger.operations - sum(kinds.values()), **kinds}

    async def check_subscribers(self, subscribers: list[asyncio.Task]) -> str:
        """One more interaction per page, with everything up: every subscriber, whichever
        socket it ended on, must see the same totals the API reports."""
        async with httpx.AsyncClient(timeout=5) as http:
            for path in PATHS:
                body = {"path": path, "reaction": "view", "action": "add", "amount": 1,
                        "visitor": f"final-{uuid.uuid4().hex[:12]}"}
                assert await self.send_interaction(http, self.web_urls()[0], body)
            deadline = time.monotonic() + 15
            while True:
                response = await http.post(f"{self.web_urls()[1]}/api/v1/sites/{SITE}"
                                           "/totals/batch", json={"paths": PATHS})
                want = {page["path"]: page["totals"] for page in response.json()["pages"]}
                caught = sum(1 for seen in self.last_totals
                             if all(_agrees(seen.get(p, {}), want[p]) for p in PATHS))
                if caught == len(self.last_totals):
                    break
                if time.monotonic() > deadline:
                    for number, seen in enumerate(self.last_totals):
                        behind = {p: (seen.get(p), want[p]) for p in PATHS
                                  if not _agrees(seen.get(p, {}), want[p])}
                        if behind:
                            self.errors.append(
                                f"subscriber {number} not caught up at {time.monotonic():.1f} "
                                f"({self.sockets[number]}): (seen, API) {behind}")
                    break
                await asyncio.sleep(0.2)
        for task in subscribers:
            task.cancel()
        await asyncio.gather(*subscribers, return_exceptions=True)
        return (f"{caught}/{len(self.last_totals)} ({self.reconnects} reconnects, "
                f"{self.churns} on purpose)")

    async def settle_and_compare(self) -> tuple[int, int]:
        # The listener drains the submission stream, then the notifier its queue. A message
        # a killed listener or notifier had read stays pending until another consumer claims
        # it (after 30 s idle), and a delivery it had leased waits for its lease to end.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _, stored = await asyncio.to_thread(self.read_sql)
            if self.ledger.comments <= stored:
                break
            await asyncio.sleep(0.2)
        await self.comments.wait_for_changes(max(deadline - time.monotonic(), 5))
        await self.wait_for_notifications(60)
        code = await asyncio.to_thread(self.rig.terminate_flusher)
        if code != 0:
            self.errors.append(f"the flusher's final flush exited with {code}")
        totals, stored = await asyncio.to_thread(self.read_sql)
        lost = duplicated = 0
        ledger = self.ledger
        for key in set(totals) | set(ledger.acknowledged):
            low = ledger.acknowledged[key] + ledger.low[key]
            high = ledger.acknowledged[key] + ledger.high[key]
            actual = totals.get(key, 0)
            if actual < low:
                lost += low - actual
                self.errors.append(f"{key}: SQL {actual}, acknowledged at least {low}")
            elif actual > high:
                duplicated += actual - high
                self.errors.append(f"{key}: SQL {actual}, acknowledged at most {high}")
        missing = ledger.comments - stored
        lost += len(missing)
        if missing:
            self.errors.append(f"{len(missing)} acknowledged comments are not in SQL")
        tokens = Tally(body.split()[-1] for body in await asyncio.to_thread(self.comment_bodies)
                       if body.startswith("Comment "))
        doubled = sum(n - 1 for n in tokens.values() if n > 1)
        duplicated += doubled
        if doubled:
            self.errors.append(f"{doubled} comments are stored more than once")
        changes_lost, changes_duplicated, problems = self.comments.ledger.compare(
            await asyncio.to_thread(self.comments.read_rows))
        self.errors.extend(problems)
        return lost + changes_lost + self.check_notifications(), duplicated + changes_duplicated

    def check_notifications(self) -> int:
        """Problems of the notices received; acknowledged comments that no receiver of a
        channel got: late if Ovation still holds them, else lost. Returns how many are lost."""
        lost = 0
        client = self.rig.redis_client()
        try:
            for deliveries in (self.rig.receivers.mail, self.rig.receivers.webhook):
                self.errors.extend(deliveries.problems())
                missing = self.ledger.comments - deliveries.received()
                target = (OWNER if deliveries.ovation_channel == "email"
                          else self.rig.webhook_id)
                found = notification_fates.fates(client, deliveries.ovation_channel, target,
                                                 missing)
                # After the fates: some arrived meanwhile, and a delivery the fates call
                # delivered was logged by its receiver before Ovation marked it so. (The
                # `deliveries` object is refreshed only through the receivers' properties.)
                self.rig.receivers.refresh()
                received = deliveries.received()
                for fate, n in Tally(fate for comment_id, fate in found.items()
                                     if comment_id not in received).items():
                    if fate in notification_fates.LATE:
                        self.late[f"{deliveries.channel} {fate}"] += n
                    else:
                        lost += n
                        self.errors.append(f"{n} acknowledged comments have no "
                                           f"{deliveries.channel} notification ({fate})")
        finally:
            client.close()
        return lost

    async def wait_for_notifications(self, timeout_s: float) -> None:
        """Until every acknowledged comment was notified by e-mail and webhook, or time is up
        (the comparison then counts the missing ones as lost)."""
        receivers = self.rig.receivers
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ledger.comments <= receivers.mail.received() & receivers.webhook.received():
                return
            await asyncio.sleep(0.2)


def _agrees(seen: dict[str, int], want: dict[str, int]) -> bool:
    return all(seen.get(reaction, 0) == total for reaction, total in want.items())


def run_scenario(directory: Path, backend: str, duration_s: float, seed: int) -> Report:
    rig = Rig(directory, backend)
    try:
        rig.start()
        return asyncio.run(Scenario(rig, seed).run(f"{backend}, {duration_s:.0f} s, seed {seed}",
                                                   duration_s))
    finally:
        rig.stop()
