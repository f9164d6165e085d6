"""One fault-injection scenario: steady mixed load, random crashes, then a ledger check.

The load's clients run in several processes (tests/reliability/client_processes.py). The
runner, this module, injects the faults, runs the live subscribers and the canaries, and does
the end phase. Every client records what the appliance acknowledged to it (the `applied` delta
of each interaction answer, the id of each 202 comment, each acknowledged edit, delete and
vote). A request that got no answer (its web was killed, Redis was restarting) was not
acknowledged: it may or may not have been applied, so it widens the allowed range of its
counter instead of being counted. Each process sends its ledgers to the runner, which merges
them. At the end, after a final flush, SQL must hold every acknowledged delta and comment
exactly once, the last acknowledged edit of each comment and vote of each visitor, and every
acknowledged comment must have been notified (e-mail and webhook) under one key.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter as Tally
from dataclasses import dataclass
from pathlib import Path

import httpx
import websockets

from appliance.storage.database import open_database
from appliance.storage.models import Comment, Counter, Page
from tests.reliability import notification_fates
from tests.reliability.client_processes import ClientProcesses, share_out
from tests.reliability.clients import CANARY, PATHS, Clients
from tests.reliability.comment_clients import CommentLoad
from tests.reliability.comment_ledger import Rows
from tests.reliability.rig import ORIGIN, OWNER, SITE, Rig

CLIENT_PROCESSES = 2  # beside the runner (the suite's machines may have only two cores)


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


class Scenario:
    def __init__(self, rig: Rig, seed: int, http_clients: int = 4, ws_clients: int = 3,
                 comment_clients: int = 2, voters: int = 2, subscribers: int = 4,
                 faults: bool = True, processes: int = CLIENT_PROCESSES) -> None:
        self.rig = rig
        self.rng = random.Random(seed)
        self.seed = seed
        assert rig.settings is not None, "start the rig first"
        self.edit_window_s = float(rig.settings.comment_edit_window_s)
        # The runner's own clients: the canaries and the final views. At the end, the client
        # processes' ledgers are merged into these.
        self.clients = Clients(self.web_urls(), seed)
        self.ledger = self.clients.ledger
        self.errors = self.clients.errors
        self.comments = CommentLoad(self.clients, self.edit_window_s)
        self.stop = asyncio.Event()  # set when the load has stopped
        self.counts = (http_clients, ws_clients, comment_clients, voters, subscribers)
        self.specs = share_out(processes, self.web_urls(), seed, self.edit_window_s,
                               http_clients, ws_clients, comment_clients, voters)
        self.inject_faults = faults
        self.faults: Tally = Tally()
        self.recover_s: list[float] = []
        self.last_totals: list[dict[str, dict[str, int]]] = [{} for _ in range(subscribers)]
        self.reconnects = 0
        self.sockets = [""] * subscribers  # each subscriber's socket: web, when, frames since
        self.churns = 0  # subscriber reconnections on purpose (connection churn)
        self.late: Tally = Tally()  # undelivered notifications Ovation still holds, by fate

    def web_urls(self) -> list[str]:
        return [self.rig.url("web0"), self.rig.url("web1")]

    # -- live subscribers (in the runner: the end phase checks what they hold) ----------------

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
                    subscribed = False
                    async for raw in ws:
                        frames += 1
                        self.sockets[number] = (f"{url} since {opened:.1f}, {frames} frames, "
                                                f"last at {time.monotonic():.1f}")
                        frame = json.loads(raw)
                        if frame["type"] == "subscribed":
                            subscribed = True
                            for page in frame["pages"]:
                                seen[page["path"]] = page["totals"]
                        elif frame["type"] == "totals":
                            seen[frame["path"]] = frame["totals"]
                        elif frame["type"] == "error" and not subscribed:
                            # The subscribe was refused (e.g. 503 while Redis restarts): the
                            # socket follows nothing, so connect again, as the widget does.
                            # Waiting on it hung one CI run ("3/4 subscribers caught up").
                            break
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
            while not await self.clients.send_interaction(http, url, body):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{url} did not recover within {timeout_s} s; "
                                         f"last failure: {self.clients.last_failure}")
                body = {**body, "visitor": f"canary-{uuid.uuid4().hex[:12]}"}
        comment_id = None
        while comment_id is None and time.monotonic() < deadline:
            comment_id = await self.comments.post(http, self.rng, 99, [])
        totals: dict[tuple[str, str], int] = {}
        stored: set[str] = set()
        want = self.ledger.acknowledged[(CANARY, "view")]
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

    async def fault_loop(self, duration_s: float, processes: ClientProcesses) -> None:
        """Faults one after another, under load, until `duration_s` has passed and every kind
        has been injected at least once (in a seeded random order, each round). Ends early if
        a client process dies (an error of the run)."""
        started = time.monotonic()
        if not self.inject_faults:  # steady load only (the memory soak)
            while time.monotonic() - started < duration_s and processes.check():
                await asyncio.sleep(min(1.0, max(0.0, started + duration_s - time.monotonic())))
            return
        kinds = self.fault_kinds()
        order: list[str] = []
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() - started < duration_s or len(self.faults) < len(kinds):
                if not processes.check():
                    return
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

    def read_rows(self) -> dict[str, Rows]:
        assert self.rig.settings is not None
        database = open_database(self.rig.settings.effective_database_url)
        try:
            with database.connection_context():
                return {row[0]: Rows(*row[1:]) for row in Comment.select(
                    Comment.id, Comment.status, Comment.body_markdown, Comment.votes_up,
                    Comment.votes_down).tuples()}
        finally:
            database.close()

    async def wait_for_changes(self, timeout_s: float) -> None:
        """Until the listener has stored every acknowledged edit and delete (or time is up:
        the comparison then reports what is missing)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.comments.ledger.pending_changes(await asyncio.to_thread(self.read_rows)):
                return
            await asyncio.sleep(0.2)

    def comment_bodies(self) -> list[str]:
        assert self.rig.settings is not None
        database = open_database(self.rig.settings.effective_database_url)
        try:
            with database.connection_context():
                return [body for (body,) in Comment.select(Comment.body_markdown).tuples()]
        finally:
            database.close()

    async def run(self, name: str, duration_s: float) -> Report:
        subscribers = [asyncio.create_task(self.subscriber(n)) for n in range(self.counts[4])]
        processes = ClientProcesses(self.specs)
        try:
            await asyncio.to_thread(processes.start)
            await self.fault_loop(duration_s, processes)
        finally:
            self.stop.set()
            shares = await asyncio.to_thread(processes.finish)
            self.errors.extend(processes.errors)
        for share in shares:  # each visitor and comment in one ledger (comment_ledger.py)
            self.ledger.merge(share.ledger)
            self.comments.ledger.merge(share.comments)
            self.errors.extend(share.errors)
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
                assert await self.clients.send_interaction(http, self.web_urls()[0], body)
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
        await self.wait_for_changes(max(deadline - time.monotonic(), 5))
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
            await asyncio.to_thread(self.read_rows))
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
