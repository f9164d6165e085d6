"""A page's thread, prepared once per build of its cache and per change of its votes, and the
JSON answers of the thread route cut from it.

A thread read is the hottest comment route, and most readers see exactly the same answer: all
of the thread but pending comments, nothing of their own. So a web worker keeps, per page, the
thread's comments with their live votes and each one already encoded; the answer for readers
who have nothing of their own on the page is cached whole, per (sort, limit, offset). A reader
with a pending comment, a comment of their own or a vote gets an answer spliced from the
encoded comments: only `mine` and `my_vote` differ, and they are the last two fields.

What makes a prepared thread stale is checked on every read, before it is used: the cached
thread's build id in Redis (a new one whenever the listener drops the thread on a change and a
reader builds it again) and the page's vote token (replaced on every vote). See
storage/comment_cache.py.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

RENDERED_PER_THREAD = 4  # whole answers kept per thread: (sort, limit, offset) variants
THREADS_PER_WORKER = 32  # prepared threads a worker keeps (200 comments: up to 0.6 MB)
_NO_VOTE_TAIL = '"mine":false,"my_vote":null}'


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def public_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """A cached comment as any reader may see it, without `mine` and `my_vote`: no visitor
    hash, and a deleted one as a placeholder."""
    shown = {key: value for key, value in entry.items()
             if key not in ("visitor_hash", "mine", "my_vote")}
    if entry["status"] == "deleted":
        shown.update(html="", author_name="", author_website="", avatar_seed="")
    return shown


@dataclass
class PreparedThread:
    build_id: str
    votes_version: str  # "" while the page has no vote token
    entries: list[dict[str, Any]]  # every cached comment, oldest first, with its live votes
    approved: int
    authors: frozenset[str]  # visitor hashes of the comments' authors
    encoded: dict[str, str] = field(default_factory=dict)  # id -> JSON without the tail
    # Pending comments that others' comments reply to (a moderator set one back to pending,
    # or its author replied to it): shown to everyone else as these placeholders, so the
    # replies keep their place.
    stand_ins: dict[str, str] = field(default_factory=dict)  # id -> JSON without the tail
    rendered: OrderedDict[tuple[str, int, int], bytes] = field(default_factory=OrderedDict)

    @classmethod
    def build(cls, build_id: str, votes_version: str, entries: list[dict[str, Any]],
              votes: dict[str, dict[str, Any]]) -> PreparedThread:
        """`votes`: live totals by comment id (`up`, `down`); a comment without is left as
        cached."""
        live = []
        for entry in entries:
            counted = votes.get(entry["id"])
            if counted is not None:
                entry = {**entry, "votes_up": counted["up"], "votes_down": counted["down"]}
            live.append(entry)
        encoded = {}
        for entry in live:
            text = _encode(public_fields(entry))
            encoded[entry["id"]] = text[:-1] + ","  # `mine` and `my_vote` are spliced in last
        by_id = {entry["id"]: entry for entry in live}
        stand_ins = {}
        for entry in live:
            if entry["status"] == "pending":
                continue
            parent = by_id.get(entry["parent_id"] or "")
            while parent is not None and parent["id"] not in stand_ins:
                if parent["status"] == "pending":
                    stand_ins[parent["id"]] = _encode(public_fields(
                        {**parent, "status": "deleted", "votes_up": 0, "votes_down": 0,
                         "edited_at": None}))[:-1] + ","
                parent = by_id.get(parent["parent_id"] or "")
        return cls(build_id, votes_version, live,
                   sum(1 for entry in live if entry["status"] == "approved"),
                   frozenset(entry["visitor_hash"] for entry in live if entry["visitor_hash"]),
                   encoded, stand_ins)

    def answer(self, path: str, sort: str, limit: int, offset: int, requester: str = "",
               my_votes: dict[str, str] | None = None) -> bytes:
        """The route's JSON answer (UTF-8) for one reader (a visitor hash, or "" for none)."""
        personal = bool(my_votes) or (requester and requester in self.authors)
        if personal:
            return self._render(path, sort, limit, offset, requester, my_votes or {}).encode()
        key = (sort, limit, offset)
        body = self.rendered.get(key)
        if body is None:
            body = self._render(path, sort, limit, offset, "", {}).encode()
            self.rendered[key] = body
            if len(self.rendered) > RENDERED_PER_THREAD:
                self.rendered.popitem(last=False)
        else:
            self.rendered.move_to_end(key)
        return body

    def visible_ids(self, requester: str = "") -> list[str]:
        return [entry["id"] for entry in self._visible(requester)]

    def _visible(self, requester: str) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if entry["status"] != "pending"
                or (requester and entry["visitor_hash"] == requester)
                or entry["id"] in self.stand_ins]

    def _render(self, path: str, sort: str, limit: int, offset: int, requester: str,
                my_votes: dict[str, str]) -> str:
        visible = self._visible(requester)
        roots = [entry for entry in visible if not entry["parent_id"]]
        if sort == "newest":
            roots.sort(key=lambda entry: entry["created_at"], reverse=True)
        elif sort == "top":
            roots.sort(key=lambda entry: (entry["votes_down"] - entry["votes_up"],
                                          entry["created_at"]))
        children: dict[str, list[dict[str, Any]]] = {}
        for entry in visible:
            if entry["parent_id"]:
                children.setdefault(entry["parent_id"], []).append(entry)
        parts: list[str] = []

        def walk(entry: dict[str, Any]) -> None:
            comment_id = entry["id"]
            mine = bool(requester) and entry["visitor_hash"] == requester
            vote = my_votes.get(comment_id)
            shown = (self.stand_ins[comment_id] if entry["status"] == "pending" and not mine
                     else self.encoded[comment_id])
            parts.append(shown + (
                _NO_VOTE_TAIL if not mine and vote is None
                else f'"mine":{"true" if mine else "false"},"my_vote":{_encode(vote)}}}'))
            for child in children.get(comment_id, []):
                walk(child)

        for root in roots[offset:offset + limit]:
            walk(root)
        next_offset = offset + limit if offset + limit < len(roots) else None
        return (f'{{"path":{_encode(path)},"total":{self.approved},"comments":['
                + ",".join(parts) + f'],"next_offset":{_encode(next_offset)}}}')


class PreparedThreads:
    """A web worker's prepared threads, by (site, path), least recently read dropped first."""

    def __init__(self, capacity: int = THREADS_PER_WORKER) -> None:
        self._capacity = capacity
        self._threads: OrderedDict[tuple[str, str], PreparedThread] = OrderedDict()

    def get(self, site: str, path: str) -> PreparedThread | None:
        prepared = self._threads.get((site, path))
        if prepared is not None:
            self._threads.move_to_end((site, path))
        return prepared

    def put(self, site: str, path: str, prepared: PreparedThread) -> None:
        self._threads[(site, path)] = prepared
        self._threads.move_to_end((site, path))
        while len(self._threads) > self._capacity:
            self._threads.popitem(last=False)
