"""The comment part of the load: clients that post comments and replies and edit and delete
their own (with the edit token each 202 gave them), and clients that vote on comments.

Every answer goes to the scenario's ledgers: the id of each acknowledged comment, and in the
CommentLedger the last acknowledged body, deletion and vote of each comment and visitor.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import TYPE_CHECKING

import httpx

from appliance.storage.database import open_database
from appliance.storage.models import Comment
from tests.reliability.comment_ledger import VOTES, CommentLedger, OwnComment, Rows
from tests.reliability.rig import ORIGIN, SITE

if TYPE_CHECKING:
    from tests.reliability.scenario import Scenario

PATHS = [f"/posts/{n}" for n in range(3)]  # pages with comments (already normalised)
HEADERS = {"Origin": ORIGIN}


def timed_out(exc: httpx.HTTPError) -> bool:
    """Sent, and maybe still being worked on by a live web (see comment_ledger)."""
    return isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout))


class CommentLoad:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.ledger = CommentLedger()
        self.votable: list[str] = []  # acknowledged comment ids, oldest first

    def url(self, rng: random.Random) -> str:
        return f"{rng.choice(self.scenario.web_urls())}/api/v1/sites/{SITE}/comments"

    def unanswered(self, kind: str) -> None:
        self.scenario.ledger.unanswered += 1
        self.answered(kind, "no answer")

    def answered(self, kind: str, answer: int | str) -> None:
        self.scenario.ledger.statuses[f"{kind} {answer}"] += 1

    def error(self, message: str) -> None:
        self.scenario.errors.append(message)

    # -- authors ---------------------------------------------------------------------------

    async def author(self, number: int) -> None:
        """Posts comments and replies; now and then edits or deletes one of its recent ones
        (and repeats a delete that got no answer, which is safe: deleting is idempotent)."""
        rng = random.Random(self.scenario.seed * 10000 + number)
        mine: list[OwnComment] = []
        async with httpx.AsyncClient(timeout=5) as http:
            while not self.scenario.stop.is_set():
                recent = mine[-20:]
                standing = [comment for comment in recent if comment.deleted == "no"]
                doubtful = [comment for comment in recent if comment.deleted == "maybe"]
                roll = rng.random()
                if doubtful and roll < 0.1:
                    await self.delete(http, rng, rng.choice(doubtful))
                elif standing and roll < 0.25:
                    await self.edit(http, rng, rng.choice(standing))
                elif standing and roll < 0.3:
                    await self.delete(http, rng, rng.choice(standing))
                else:
                    await self.post(http, rng, number, mine)
                await asyncio.sleep(0.05)

    async def post(self, http: httpx.AsyncClient, rng: random.Random, number: int,
                   mine: list[OwnComment]) -> str | None:
        token = uuid.uuid4().hex
        text = f"Comment {token}"
        body = {"path": rng.choice(PATHS), "body": text, "visitor": f"commenter-{number}"}
        if mine and rng.random() < 0.4:  # a reply to one of mine, stored or not yet
            parent = rng.choice(mine)
            body.update(path=parent.path, parent_id=parent.id)
        try:
            response = await http.post(self.url(rng), json=body, headers=HEADERS)
        except httpx.HTTPError:
            self.unanswered("comment")
            return None
        self.answered("comment", response.status_code)
        if response.status_code == 202:
            answer = response.json()
            ledger = self.scenario.ledger
            ledger.comments.add(answer["id"])
            ledger.comment_tokens.add(token)
            ledger.operations += 1
            mine.append(self.ledger.posted(answer["id"], answer["path"], answer["edit_token"],
                                           text))
            self.votable.append(answer["id"])
            return answer["id"]
        if response.status_code >= 500:
            self.scenario.ledger.unanswered += 1
        elif response.json()["error"]["code"] != "unknown_parent":
            self.error(f"comment answered {response.status_code}: {response.text}")
        await asyncio.sleep(0.1)
        return None

    async def edit(self, http: httpx.AsyncClient, rng: random.Random,
                   comment: OwnComment) -> None:
        text = f"Edited {uuid.uuid4().hex}"
        outcome = await self.change(http, rng, "PATCH", comment,
                                    {"edit_token": comment.edit_token, "body": text})
        if outcome == "acknowledged":
            self.ledger.edited(comment, text)
            self.scenario.ledger.operations += 1
        elif outcome != "refused":
            comment.body.unknown(text, outcome == "timed out")

    async def delete(self, http: httpx.AsyncClient, rng: random.Random,
                     comment: OwnComment) -> None:
        outcome = await self.change(http, rng, "DELETE", comment,
                                    {"edit_token": comment.edit_token})
        if outcome == "acknowledged":
            self.ledger.deleted(comment)
            self.scenario.ledger.operations += 1
        elif outcome != "refused":
            comment.deleted = "maybe"

    async def change(self, http: httpx.AsyncClient, rng: random.Random, method: str,
                     comment: OwnComment, body: dict) -> str:
        """An edit or delete: acknowledged, unanswered, timed out or refused."""
        try:
            response = await http.request(method, f"{self.url(rng)}/{comment.id}", json=body,
                                          headers=HEADERS)
        except httpx.HTTPError as exc:
            self.unanswered(method)
            await asyncio.sleep(0.1)
            return "timed out" if timed_out(exc) else "unanswered"
        self.answered(method, response.status_code)
        if response.status_code == 202:
            return "acknowledged"
        if response.status_code >= 500:
            self.scenario.ledger.unanswered += 1
            await asyncio.sleep(0.1)
            return "unanswered"
        self.error(f"{method} comment answered {response.status_code}: {response.text}")
        return "refused"

    # -- voters ----------------------------------------------------------------------------

    async def voter(self, number: int) -> None:
        """Votes up, down or none on recent comments, as one of a few visitors."""
        rng = random.Random(self.scenario.seed * 100000 + number)
        async with httpx.AsyncClient(timeout=5) as http:
            while not self.scenario.stop.is_set():
                if not self.votable:
                    await asyncio.sleep(0.1)
                    continue
                await self.vote(http, rng, rng.choice(self.votable[-40:]),
                                f"voter-{number}-{rng.randrange(5)}", rng.choice(VOTES))
                await asyncio.sleep(0.01)

    async def vote(self, http: httpx.AsyncClient, rng: random.Random, comment_id: str,
                   visitor: str, vote: str) -> None:
        try:
            response = await http.post(f"{self.url(rng)}/{comment_id}/vote", headers=HEADERS,
                                       json={"visitor": visitor, "vote": vote})
        except httpx.HTTPError as exc:
            self.unanswered("vote")
            self.ledger.vote_unknown(visitor, comment_id, vote, timed_out(exc))
            await asyncio.sleep(0.1)
            return
        self.answered("vote", response.status_code)
        if response.status_code == 200:
            self.ledger.voted(visitor, comment_id, vote)
            self.scenario.ledger.operations += 1
        elif response.status_code >= 500:
            self.scenario.ledger.unanswered += 1
            self.ledger.vote_unknown(visitor, comment_id, vote, False)
            await asyncio.sleep(0.1)
        elif response.json()["error"]["code"] != "unknown_comment":  # not stored yet, deleted
            self.error(f"vote answered {response.status_code}: {response.text}")

    # -- checking --------------------------------------------------------------------------

    def read_rows(self) -> dict[str, Rows]:
        settings = self.scenario.rig.settings
        assert settings is not None
        database = open_database(settings.effective_database_url)
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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if not self.ledger.pending_changes(await asyncio.to_thread(self.read_rows)):
                return
            await asyncio.sleep(0.2)
