"""The comment part of the load: clients that post comments and replies and edit and delete
their own (with the edit token each 202 gave them), and clients that vote on comments.

Every answer goes to the process's ledgers: the id of each acknowledged comment, and in the
CommentLedger the last acknowledged body, deletion and vote of each comment and visitor. The
voters of a process vote on the comments of that process's authors, and every author and voter
is a visitor of its own: so each comment's state and each visitor's vote has its whole history
in one process, one ledger (see comment_ledger), and needs no state shared between processes.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import httpx

from tests.reliability.clients import HEADERS, SITE, Clients
from tests.reliability.comment_ledger import VOTES, CommentLedger, OwnComment

PATHS = [f"/posts/{n}" for n in range(3)]  # pages with comments (already normalised)
# Authors edit and delete only comments posted at least this long before the edit window
# closes, so that no edit is refused for its age (the request itself takes at most 5 s).
EDIT_MARGIN_S = 30.0


def timed_out(exc: httpx.HTTPError) -> bool:
    """Sent, and maybe still being worked on by a live web (see comment_ledger)."""
    return isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout))


class CommentLoad:
    def __init__(self, clients: Clients, edit_window_s: float) -> None:
        self.clients = clients
        self.ledger = CommentLedger()
        self.votable: list[str] = []  # acknowledged comment ids, oldest first
        self.editable_s = edit_window_s - EDIT_MARGIN_S

    def url(self, rng: random.Random) -> str:
        return f"{rng.choice(self.clients.urls)}/api/v1/sites/{SITE}/comments"

    def unanswered(self, kind: str) -> None:
        self.clients.ledger.unanswered += 1
        self.answered(kind, "no answer")

    def answered(self, kind: str, answer: int | str) -> None:
        self.clients.ledger.statuses[f"{kind} {answer}"] += 1

    def error(self, message: str) -> None:
        self.clients.errors.append(message)

    # -- authors ---------------------------------------------------------------------------

    async def author(self, number: int) -> None:
        """Posts comments and replies; now and then edits or deletes one of its recent ones
        (and repeats a delete that got no answer, which is safe: deleting is idempotent)."""
        rng = random.Random(self.clients.seed * 10000 + number)
        mine: list[OwnComment] = []
        async with httpx.AsyncClient(timeout=5) as http:
            while not self.clients.stop.is_set():
                young = time.monotonic() - self.editable_s  # posted after this: editable
                recent = [comment for comment in mine[-20:] if comment.sent_at > young]
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
        sent_at = time.monotonic()  # before the web starts the edit window
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
            ledger = self.clients.ledger
            ledger.comments.add(answer["id"])
            ledger.comment_tokens.add(token)
            ledger.operations += 1
            mine.append(self.ledger.posted(answer["id"], answer["path"], answer["edit_token"],
                                           text, sent_at))
            self.votable.append(answer["id"])
            return answer["id"]
        if response.status_code >= 500:
            self.clients.ledger.unanswered += 1
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
            self.clients.ledger.operations += 1
        elif outcome != "refused":
            comment.body.unknown(text, outcome == "timed out")

    async def delete(self, http: httpx.AsyncClient, rng: random.Random,
                     comment: OwnComment) -> None:
        outcome = await self.change(http, rng, "DELETE", comment,
                                    {"edit_token": comment.edit_token})
        if outcome == "acknowledged":
            self.ledger.deleted(comment)
            self.clients.ledger.operations += 1
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
            self.clients.ledger.unanswered += 1
            await asyncio.sleep(0.1)
            return "unanswered"
        self.error(f"{method} comment answered {response.status_code}: {response.text}")
        return "refused"

    # -- voters ----------------------------------------------------------------------------

    async def voter(self, number: int) -> None:
        """Votes up, down or none on recent comments of this process's authors, as one of a
        few visitors of its own."""
        rng = random.Random(self.clients.seed * 100000 + number)
        async with httpx.AsyncClient(timeout=5) as http:
            while not self.clients.stop.is_set():
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
            self.clients.ledger.operations += 1
        elif response.status_code >= 500:
            self.clients.ledger.unanswered += 1
            self.ledger.vote_unknown(visitor, comment_id, vote, False)
            await asyncio.sleep(0.1)
        elif response.json()["error"]["code"] != "unknown_comment":  # not stored yet, deleted
            self.error(f"vote answered {response.status_code}: {response.text}")
