"""The rules for comments: what a reader may post, edit and delete, and what others see.

The web validates, rate-limits, decides the moderation status, gives the comment its id and
puts it on the durable submission stream; the listener stores it (`workers/comment_handlers`).
Markdown is rendered and sanitised once, when stored, never on read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import peewee as pw

from appliance import events
from appliance.errors import Forbidden, InvalidInput, RateLimited, UnknownComment, UnknownPage
from appliance.paths import normalise_path
from appliance.services.rendering import clean_text, has_links, render_markdown
from appliance.services.visitors import visitor_hash
from appliance.settings import Settings
from appliance.storage import comment_cache as cache
from appliance.storage import comment_store
from appliance.storage.models import utcnow
from appliance.storage.site_store import SiteRecord, page_exists

MODERATION_MODES = ("open", "all", "first_time", "links")
SORTS = ("oldest", "newest", "top")
EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f<>\"']{1,64}@[^@\s\x00-\x1f\x7f<>\"']{1,253}"
                   r"\.[^@\s\x00-\x1f\x7f<>\"'.]{2,}$")
COMMENT_ID = re.compile(r"^[0-9a-f]{32}$")
DUPLICATE_WINDOW_S = 600
_CONTROL_IN_TEXT = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SqlRun = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class CommentInput:
    path: str
    body: str
    visitor: str
    author_name: str = ""
    author_email: str = ""
    author_website: str = ""
    parent_id: str | None = None
    notify_replies: bool = False
    honeypot: str = ""


@dataclass(frozen=True)
class SubmittedComment:
    id: str
    path: str
    status: str
    edit_token: str
    html: str
    created_at: str
    editable_until: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ip_hash(key: bytes, site: str, ip: str | None) -> str:
    """Keyed hash of the client's network: IPv6 clients are grouped by /64 (one household)."""
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
        network = (ipaddress.ip_network(f"{ip}/64", strict=False) if address.version == 6
                   else ipaddress.ip_network(f"{ip}/32"))
        text = str(network)
    except ValueError:
        text = ip
    return hmac.new(key, f"ip\0{site}\0{text}".encode(), hashlib.sha256).hexdigest()[:32]


def public_entry(entry: dict[str, Any], requester: str = "") -> dict[str, Any]:
    """A cached comment as a reader may see it: no visitor hash; deleted ones as placeholders."""
    shown = {key: value for key, value in entry.items() if key != "visitor_hash"}
    shown["mine"] = bool(requester) and entry.get("visitor_hash") == requester
    shown.setdefault("my_vote", None)
    if entry["status"] == "deleted":
        shown.update(html="", author_name="", author_website="", avatar_seed="")
    return shown


class VoteCounter(Protocol):
    """The write-behind counter for comment votes (CounterService)."""

    async def vote(self, site: SiteRecord, comment_id: str, choice: str,
                   visitor_id: str) -> dict[str, Any]: ...

    async def vote_totals(self, site: str, comment_ids: list[str],
                          visitor: str = "") -> dict[str, dict[str, Any]]: ...


class CommentService:
    """Comment rules for a web worker (async, Redis and SQL through `run_sql`)."""

    def __init__(self, redis, database: pw.Database, settings: Settings,
                 run_sql: SqlRun, votes: VoteCounter | None = None) -> None:
        self._redis = redis
        self._database = database
        self._settings = settings
        self._run_sql = run_sql
        self._votes = votes
        self._key = settings.hashing_key()

    # -- posting ---------------------------------------------------------------------------

    async def submit(self, site: SiteRecord, data: CommentInput, client_ip: str | None
                     ) -> SubmittedComment:
        path = normalise_path(data.path, self._settings.max_path_length)
        visitor = visitor_hash(self._key, site.name, data.visitor)
        body = self._check_body(data.body)
        name = clean_text(data.author_name)[:100]
        email = self._check_email(data.author_email)
        website = self._check_website(data.author_website)
        comment_id = uuid.uuid4().hex
        now = utcnow()
        edit_token = secrets.token_urlsafe(24)
        until = now + dt.timedelta(seconds=self._settings.comment_edit_window_s)
        if data.honeypot:
            # A bot filled the field humans never see: answer as if accepted, store nothing.
            return SubmittedComment(comment_id, path, "pending", edit_token, "",
                                    now.isoformat() + "Z", until.isoformat() + "Z")
        network = ip_hash(self._key, site.name, client_ip)
        if not site.accept_unpublished_pages and not await self._run_sql(
                page_exists, self._database, site.name, path):
            raise UnknownPage(f"Site {site.name!r} takes comments only on published pages, "
                              f"and {path} is not one.")
        if await self._run_sql(comment_store.is_banned, self._database, site.name, visitor,
                               network):
            raise Forbidden("You may not comment on this site.", code="banned")
        await self._check_rate(site.name, visitor, network)
        if data.parent_id:
            await self._check_parent(site.name, path, data.parent_id)
        body_sha = hashlib.sha256(body.encode()).hexdigest()[:16]
        if not await self._redis.set(cache.duplicate_key(site.name, path, visitor, body_sha),
                                     "1", nx=True, ex=DUPLICATE_WINDOW_S):
            raise InvalidInput("You posted this same comment here a moment ago.",
                               code="duplicate_comment", status=409)
        status = await self._initial_status(site, visitor, body)
        html = render_markdown(body)
        avatar = (hmac.new(self._key, email.lower().encode(), hashlib.sha256).hexdigest()[:16]
                  if email else visitor[:16])
        event = {
            "id": comment_id, "site": site.name, "path": path, "parent_id": data.parent_id,
            "author_name": name, "author_email": email, "author_website": website,
            "avatar_seed": avatar, "body_markdown": body, "status": status,
            "visitor_hash": visitor, "ip_hash": network, "edit_token_hash": hash_token(edit_token),
            "notify_replies": bool(data.notify_replies and email),
            "created_at": now.isoformat(),
        }
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(cache.token_key(comment_id), mapping={
            "token_hash": event["edit_token_hash"], "site": site.name, "path": path})
        pipe.expire(cache.token_key(comment_id), max(self._settings.comment_edit_window_s, 1))
        pipe.xadd(events.SUBMISSION_STREAM, {"kind": "comment", "body": _json(event)},
                  maxlen=1_000_000, approximate=True)
        await pipe.execute()
        return SubmittedComment(comment_id, path, status, edit_token, html,
                                now.isoformat() + "Z", until.isoformat() + "Z")

    async def edit(self, site: SiteRecord, comment_id: str, edit_token: str, body: str) -> str:
        """Queue an author's edit; returns the new HTML (as it will be stored)."""
        await self._check_token(site, comment_id, edit_token)
        body = self._check_body(body)
        await self._redis.xadd(events.SUBMISSION_STREAM, {"kind": "comment_edit", "body": _json(
            {"id": comment_id, "body_markdown": body, "edited_at": utcnow().isoformat()})})
        return render_markdown(body)

    async def delete(self, site: SiteRecord, comment_id: str, edit_token: str) -> None:
        await self._check_token(site, comment_id, edit_token)
        await self._redis.xadd(events.SUBMISSION_STREAM, {"kind": "comment_delete", "body": _json(
            {"id": comment_id, "event_id": f"delete-{comment_id}"})})

    # -- reading ---------------------------------------------------------------------------

    async def thread(self, site: SiteRecord, raw_path: str, sort: str = "oldest",
                     limit: int | None = None, offset: int = 0,
                     visitor_id: str | None = None) -> dict[str, Any]:
        """One page of a thread: top-level comments in `sort` order, each with its replies."""
        path = normalise_path(raw_path, self._settings.max_path_length)
        requester = visitor_hash(self._key, site.name, visitor_id) if visitor_id else ""
        raw = await self._redis.get(cache.thread_key(site.name, path))
        if raw is None:
            stored = await self._run_sql(comment_store.thread, self._database, site.name, path)
            entries = [comment.as_cache_entry() for comment in stored]
            await self._redis.set(cache.thread_key(site.name, path),
                                  cache.encode_thread(entries), ex=cache.THREAD_TTL_S)
        else:
            entries = cache.decode_thread(raw)
        visible = [entry for entry in entries if entry["status"] != "pending"
                   or (requester and entry["visitor_hash"] == requester)]
        if self._votes is not None and visible:
            # Votes live in the write-behind counters, newer than the cached thread.
            live = await self._votes.vote_totals(site.name, [e["id"] for e in visible],
                                                 requester)
            visible = [{**entry, "votes_up": live[entry["id"]]["up"],
                        "votes_down": live[entry["id"]]["down"],
                        "my_vote": live[entry["id"]]["mine"]} for entry in visible]
        roots = [entry for entry in visible if not entry["parent_id"]]
        if sort == "newest":
            roots.sort(key=lambda entry: entry["created_at"], reverse=True)
        elif sort == "top":
            roots.sort(key=lambda entry: (entry["votes_down"] - entry["votes_up"],
                                          entry["created_at"]))
        limit = limit or self._settings.comment_page_size
        page_roots = roots[offset:offset + limit]
        children: dict[str, list[dict]] = {}
        for entry in visible:
            if entry["parent_id"]:
                children.setdefault(entry["parent_id"], []).append(entry)
        ordered: list[dict[str, Any]] = []

        def walk(entry: dict[str, Any]) -> None:
            ordered.append(public_entry(entry, requester))
            for child in children.get(entry["id"], []):
                walk(child)

        for root in page_roots:
            walk(root)
        approved = sum(1 for entry in entries if entry["status"] == "approved")
        next_offset = offset + limit if offset + limit < len(roots) else None
        return {"path": path, "total": approved, "comments": ordered,
                "next_offset": next_offset}

    async def vote(self, site: SiteRecord, comment_id: str, choice: str,
                   visitor_id: str) -> dict[str, Any]:
        """A visitor's up/down vote on an approved comment (or "none" to withdraw it)."""
        visitor_hash(self._key, site.name, visitor_id)  # validates the id
        comment = None
        if COMMENT_ID.fullmatch(comment_id):  # never reaches SQL (PostgreSQL refuses NUL)
            comment = await self._run_sql(comment_store.get_comment, self._database, comment_id)
        if comment is None or comment.site != site.name or comment.status != "approved":
            raise UnknownComment(f"No comment {comment_id!r} to vote on at site {site.name!r}.")
        if self._votes is None:
            raise RuntimeError("CommentService was built without a vote counter")
        result = await self._votes.vote(site, comment_id, choice, visitor_id)
        await self._redis.publish(events.LIVE_CHANNEL, events.LiveEvent(
            "comment_votes", site.name, comment.path,
            {"id": comment_id, "up": result["up"], "down": result["down"]}).encode())
        return {"id": comment_id, **result}

    async def counts(self, site: str, paths: list[str]) -> dict[str, int]:
        """Approved-comment counts of normalised paths (cached by the listener)."""
        keys = [cache.count_key(site, path) for path in paths]
        cached = await self._redis.mget(keys) if keys else []
        counts = {path: int(value) for path, value in zip(paths, cached, strict=True)
                  if value is not None}
        missing = [path for path in paths if path not in counts]
        if missing:
            fresh = await self._run_sql(comment_store.approved_counts, self._database, site,
                                        missing)
            pipe = self._redis.pipeline(transaction=False)
            for path, count in fresh.items():
                pipe.set(cache.count_key(site, path), count, ex=cache.COUNT_TTL_S, nx=True)
            await pipe.execute()
            counts.update(fresh)
        return counts

    # -- checks ----------------------------------------------------------------------------

    def _check_body(self, body: str) -> str:
        # NUL as CommonMark reads it (U+FFFD): PostgreSQL cannot store it in text. Other
        # control characters (terminal escapes, bells) have no place in a comment: dropped,
        # so no later reader (a terminal, a mail client) ever receives them.
        body = _CONTROL_IN_TEXT.sub("", body.replace("\x00", "\ufffd")).strip()
        if not body:
            raise InvalidInput("The comment is empty.", details={"field": "body"})
        limit = self._settings.comment_max_length
        if len(body) > limit:
            raise InvalidInput(f"The comment is longer than {limit} characters.",
                               details={"field": "body"})
        if not re.sub(r"<[^>]*>", "", render_markdown(body)).strip():
            raise InvalidInput("The comment has no visible text.", details={"field": "body"})
        return body

    @staticmethod
    def _check_email(email: str) -> str:
        email = email.strip()
        if email and (len(email) > 254 or not EMAIL.match(email)):
            raise InvalidInput("author_email is not an e-mail address.",
                               details={"field": "author_email"})
        return email

    @staticmethod
    def _check_website(website: str) -> str:
        website = website.strip()
        if not website:
            return ""
        try:
            parts = urlsplit(website)
        except ValueError:
            parts = None
        if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
                or len(website) > 500 or re.search(r"[\s\x00-\x1f\x7f<>\"'`\\]", website)):
            raise InvalidInput("author_website must be an http(s) URL.",
                               details={"field": "author_website"})
        return website

    async def _check_rate(self, site: str, visitor: str, network: str) -> None:
        window = self._settings.comment_rate_window_s
        limit = self._settings.comment_rate_limit
        pipe = self._redis.pipeline(transaction=False)
        checked = [("visitor", visitor)] + ([("ip", network)] if network else [])
        for kind, value in checked:
            key = cache.rate_key(site, kind, value)
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
            pipe.ttl(key)
        replies = await pipe.execute()
        for index in range(len(checked)):
            count, ttl = replies[index * 3], replies[index * 3 + 2]
            if count > limit:
                retry = max(int(ttl), 1)
                raise RateLimited(f"At most {limit} comments per {window} s; try again in "
                                  f"{retry} s.", retry)

    async def _check_parent(self, site: str, path: str, parent_id: str) -> None:
        recent = await self._redis.hgetall(cache.token_key(parent_id))
        if recent and recent.get("site") == site and recent.get("path") == path:
            return  # posted moments ago, maybe not stored yet
        parent = await self._run_sql(comment_store.get_comment, self._database, parent_id)
        if parent is None or parent.site != site or parent.path != path \
                or parent.status in ("rejected", "spam"):
            raise InvalidInput("The comment replied to does not exist on this page.",
                               code="unknown_parent", details={"field": "parent_id"})

    async def _initial_status(self, site: SiteRecord, visitor: str, body: str) -> str:
        mode = site.moderation
        if mode == "all":
            return "pending"
        if mode == "links" and has_links(body):
            return "pending"
        if mode == "first_time" and not await self._run_sql(
                comment_store.has_approved_comment, self._database, site.name, visitor):
            return "pending"
        return "approved"

    async def _check_token(self, site: SiteRecord, comment_id: str, edit_token: str) -> None:
        if not COMMENT_ID.fullmatch(comment_id):  # never reaches SQL (PostgreSQL refuses NUL)
            raise UnknownComment(f"No comment {comment_id!r} on site {site.name!r}.")
        record = await self._redis.hgetall(cache.token_key(comment_id))
        if not record:
            stored = await self._run_sql(comment_store.get_comment, self._database, comment_id)
            if stored is None or stored.site != site.name:
                raise UnknownComment(f"No comment {comment_id!r} on site {site.name!r}.")
            raise Forbidden("The edit window of this comment has closed.",
                            code="edit_window_closed")
        if record.get("site") != site.name:
            raise UnknownComment(f"No comment {comment_id!r} on site {site.name!r}.")
        if not hmac.compare_digest(record["token_hash"], hash_token(edit_token)):
            raise Forbidden("The edit token does not match this comment.",
                            code="invalid_edit_token")


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))
