"""The rules for comments: what a reader may post, edit and delete, and what others see.

The web validates, rate-limits, decides the moderation status, gives the comment its id and
puts it on the durable submission stream; the listener stores it (`workers/comment_handlers`).
Markdown is rendered and sanitised once, when the web accepts a comment or an edit, never
on read. Bans are checked against the worker's copy of the site's bans (ban_list.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import peewee as pw

from appliance import events
from appliance.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    RateLimited,
    UnknownComment,
    UnknownPage,
)
from appliance.paths import normalise_path
from appliance.services.ban_list import UNCHECKED, BanCache, SiteBans
from appliance.services.ip_salts import IpSalts, SaltPolicy
from appliance.services.rate_limits import site_limit
from appliance.services.rendering import clean_text, has_links, render_markdown
from appliance.services.thread_view import PreparedThread, PreparedThreads, public_fields
from appliance.services.visitors import visitor_hash
from appliance.settings import Settings
from appliance.storage import comment_cache as cache
from appliance.storage import comment_store
from appliance.storage.models import utcnow
from appliance.storage.script_batcher import ScriptBatcher
from appliance.storage.site_store import SiteRecord, page_exists

MODERATION_MODES = ("open", "all", "first_time", "links")
SORTS = ("oldest", "newest", "top")
EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f<>\"']{1,64}@[^@\s\x00-\x1f\x7f<>\"']{1,253}"
                   r"\.[^@\s\x00-\x1f\x7f<>\"'.]{2,}$")
COMMENT_ID = re.compile(r"^[0-9a-f]{32}$")
DUPLICATE_WINDOW_S = 600
SUBMISSION_STREAM_MAXLEN = 1_000_000  # approximate: the listener keeps up long before
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


def public_entry(entry: dict[str, Any], requester: str = "") -> dict[str, Any]:
    """A cached comment as a reader may see it: no visitor hash; deleted ones as placeholders."""
    return {**public_fields(entry),
            "mine": bool(requester) and entry.get("visitor_hash") == requester,
            "my_vote": entry.get("my_vote")}


class VoteCounter(Protocol):
    """The write-behind counter for comment votes (CounterService)."""

    async def vote(self, site: SiteRecord, comment_id: str, choice: str,
                   visitor_id: str) -> dict[str, Any]: ...

    async def vote_totals(self, site: str, comment_ids: list[str],
                          visitor: str = "") -> dict[str, dict[str, Any]]: ...


class CommentService:
    """Comment rules for a web worker (async, Redis and SQL through `run_sql`)."""

    def __init__(self, redis, database: pw.Database, settings: Settings,
                 run_sql: SqlRun, votes: VoteCounter | None = None,
                 ip_salts: IpSalts | None = None, batcher: ScriptBatcher | None = None) -> None:
        self._redis = redis
        self._database = database
        self._settings = settings
        self._run_sql = run_sql
        self._votes = votes
        self._key = settings.hashing_key()
        self._threads = PreparedThreads()
        self._batcher = batcher
        self._thread_state = redis.register_script(cache.THREAD_STATE_SCRIPT)
        self._my_votes = redis.register_script(cache.MY_VOTES_SCRIPT)
        self._add_voter = redis.register_script(cache.ADD_VOTER_SCRIPT)
        self._submit_script = redis.register_script(cache.SUBMIT_SCRIPT)
        self._delete_script = redis.register_script(cache.DELETE_SCRIPT)
        self._cache_thread = redis.register_script(cache.CACHE_THREAD_SCRIPT)
        # The process's salts of IP hashes; the web's rate limits use the same copy.
        self.ip_salts = ip_salts or IpSalts(database, self._key,
                                            SaltPolicy.from_settings(settings), run_sql)
        # The sites' bans, checked without SQL; the submission script keeps them honest.
        self.bans = BanCache(redis, database, run_sql)

    # -- posting ---------------------------------------------------------------------------

    async def submit(self, site: SiteRecord, data: CommentInput, client_ip: str | None
                     ) -> SubmittedComment:
        path = normalise_path(data.path, self._settings.max_path_length)
        visitor = visitor_hash(self._key, site.name, data.visitor)
        body, html = self._check_body(data.body)
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
        if not site.accept_unpublished_pages and not await self._run_sql(
                page_exists, self._database, site.name, path):
            raise UnknownPage(f"Site {site.name!r} takes comments only on published pages, "
                              f"and {path} is not one.")
        bans = await self.bans.get(site.name)
        networks = await self._network_hashes(site.name, client_ip, bans)
        if bans.matches(visitor, networks):
            # Refused only on a current copy: a ban lifted moments ago refuses nobody.
            bans = await self.bans.confirm(site.name, bans)
            networks = await self._refuse_banned(site.name, visitor, client_ip, bans)
        network = networks[0] if networks else ""  # the current salt's, stored
        if data.parent_id:
            await self._check_parent(site.name, path, data.parent_id)
        status = await self._initial_status(site, visitor, body, html)
        avatar = (hmac.new(self._key, email.lower().encode(), hashlib.sha256).hexdigest()[:16]
                  if email else visitor[:16])
        event = {
            "id": comment_id, "site": site.name, "path": path, "parent_id": data.parent_id,
            "author_name": name, "author_email": email, "author_website": website,
            "avatar_seed": avatar, "body_markdown": body, "body_html": html, "status": status,
            "visitor_hash": visitor, "ip_hash": network, "edit_token_hash": hash_token(edit_token),
            "notify_replies": bool(data.notify_replies and email),
            "created_at": now.isoformat(),
        }
        if not await self._queue(site, visitor, network, body, event, bans.version):
            # Another worker or a moderator changed the site's bans since this worker's copy
            # was loaded (or Redis lost its version): check again on a fresh copy, read after
            # the script said so, and queue without a second check, as a SQL check at this
            # point would.
            bans = await self.bans.load(site.name)
            await self._refuse_banned(site.name, visitor, client_ip, bans)
            await self._queue(site, visitor, network, body, event, UNCHECKED)
        return SubmittedComment(comment_id, path, status, edit_token, html,
                                now.isoformat() + "Z", until.isoformat() + "Z")

    async def edit(self, site: SiteRecord, comment_id: str, edit_token: str, body: str) -> str:
        """Queue an author's edit; returns the new HTML (as it will be stored). A deleted
        comment is refused: the edit would bring back text its author or a moderator
        removed (the listener checks again, for a delete queued after this check)."""
        record = await self._check_token(site, comment_id, edit_token)
        body, html = self._check_body(body)
        stored = None
        if not record.get("deleted"):  # the author's own delete is known without SQL
            stored = await self._run_sql(comment_store.get_comment, self._database, comment_id)
        if record.get("deleted") or (stored is not None and stored.erased):
            raise Conflict("This comment was deleted: it can no longer be edited.",
                           code="comment_deleted")
        await self._redis.xadd(events.SUBMISSION_STREAM, {"kind": "comment_edit", "body": _json(
            {"id": comment_id, "body_markdown": body, "body_html": html,
             "edited_at": utcnow().isoformat()})})
        return html

    async def delete(self, site: SiteRecord, comment_id: str, edit_token: str) -> None:
        await self._check_token(site, comment_id, edit_token)
        await self._delete_script(keys=[cache.token_key(comment_id), events.SUBMISSION_STREAM],
                                  args=[_json({"id": comment_id,
                                               "event_id": f"delete-{comment_id}"})])

    # -- reading ---------------------------------------------------------------------------

    async def thread(self, site: SiteRecord, raw_path: str, sort: str = "oldest",
                     limit: int | None = None, offset: int = 0,
                     visitor_id: str | None = None) -> dict[str, Any]:
        """One page of a thread: top-level comments in `sort` order, each with its replies."""
        return json.loads(await self.thread_json(site, raw_path, sort, limit, offset,
                                                 visitor_id))

    async def thread_json(self, site: SiteRecord, raw_path: str, sort: str = "oldest",
                          limit: int | None = None, offset: int = 0,
                          visitor_id: str | None = None) -> bytes:
        """`thread` as the JSON of the answer (UTF-8), cut from this worker's prepared thread
        (services/thread_view.py): one round trip of a few small reads when nothing changed
        and the reader never voted on the page."""
        path = normalise_path(raw_path, self._settings.max_path_length)
        requester = visitor_hash(self._key, site.name, visitor_id) if visitor_id else ""
        limit = limit or self._settings.comment_page_size
        keys = [cache.thread_key(site.name, path), cache.votes_version_key(site.name, path),
                cache.voters_key(site.name, path)]  # whether this reader voted: most never do
        build_id, votes_version, voters_known, voted = await self._script(
            self._thread_state, keys, [cache.BUILD_ID_LENGTH, requester])
        prepared = self._threads.get(site.name, path)
        if prepared is None or not build_id or prepared.build_id != build_id:
            prepared = await self._prepare_thread(site.name, path, votes_version)
        elif prepared.votes_version != votes_version:
            # Read after the token, so these votes are at least as new as it says.
            prepared = PreparedThread.build(prepared.build_id, votes_version, prepared.entries,
                                            await self._live_votes(site.name, prepared))
            self._threads.put(site.name, path, prepared)
        my_votes: dict[str, str] = {}
        if requester and self._votes is not None:
            if not voters_known:
                voted = requester in await self._rebuild_voters(site.name, path, prepared)
            ids = prepared.visible_ids(requester) if voted else []
            if ids:
                reply = await self._my_votes(args=cache.my_votes_args(site.name, requester, ids))
                my_votes = cache.parse_my_votes(ids, reply)
        return prepared.answer(path, sort, limit, offset, requester, my_votes)

    async def _rebuild_voters(self, site: str, path: str, prepared: PreparedThread
                              ) -> set[str]:
        """The page's voters, read from the votes themselves, kept as its voters set. The set
        exists (its sentinel) before the votes are read: a vote from then on adds its voter
        itself (`ADD_VOTER_SCRIPT` adds only to a set that exists), an earlier one is read."""
        key = cache.voters_key(site, path)
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(key, cache.VOTERS_SENTINEL)
        pipe.expire(key, cache.THREAD_TTL_S)
        for comment_id in (e["id"] for e in prepared.entries if e["status"] != "pending"):
            pipe.hkeys(cache.vote_state_key(site, comment_id))
        fields = (await pipe.execute())[2:]
        voters = {field[5:] for names in fields for field in names if field.startswith("vote|")}
        if voters:
            await self._redis.sadd(key, *voters)
        return voters

    async def _script(self, script, keys: list, args: list) -> Any:
        """Through the worker's script batcher, if it has one: concurrent readers' checks
        share one pipeline with the other requests' scripts."""
        if self._batcher is not None:
            return await self._batcher.call(script, keys, args)
        return await script(keys=keys, args=args)

    async def _prepare_thread(self, site: str, path: str,
                              votes_version: str) -> PreparedThread:
        """The page's thread from its Redis cache, or from SQL (then cached), with live votes."""
        keys = [cache.thread_key(site, path), cache.generation_key(site, path)]
        raw, generation = await self._redis.mget(keys)
        build_id, entries = cache.decode_thread(raw) if raw is not None else ("", [])
        if not build_id:  # not cached, or cached by a version without build ids
            stored = await self._run_sql(comment_store.thread, self._database, site, path)
            entries = [comment.as_cache_entry() for comment in stored]
            build_id = cache.new_build_id()
            cached = await self._cache_thread(keys=keys, args=[
                generation or "", cache.encode_thread(entries, build_id), cache.THREAD_TTL_S])
            if not cached:  # dropped during the SQL read: this answer only, never reused
                build_id = ""
        unvoted = PreparedThread.build(build_id, votes_version, entries, {})
        prepared = PreparedThread.build(build_id, votes_version, entries,
                                        await self._live_votes(site, unvoted))
        self._threads.put(site, path, prepared)
        return prepared

    async def _live_votes(self, site: str, prepared: PreparedThread) -> dict[str, dict]:
        """Votes live in the write-behind counters, newer than the cached thread; pending
        comments have none."""
        if self._votes is None:
            return {}
        ids = [entry["id"] for entry in prepared.entries if entry["status"] != "pending"]
        return await self._votes.vote_totals(site, ids) if ids else {}

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
        pipe = self._redis.pipeline(transaction=False)
        # After the vote: a reader that reads the token before the votes is never behind it.
        pipe.set(cache.votes_version_key(site.name, comment.path), cache.new_votes_version(),
                 ex=cache.THREAD_TTL_S)
        await self._add_voter(keys=[cache.voters_key(site.name, comment.path)],  # queued
                              args=[visitor_hash(self._key, site.name, visitor_id),
                                    cache.THREAD_TTL_S], client=pipe)
        pipe.publish(events.LIVE_CHANNEL, events.LiveEvent(
            "comment_votes", site.name, comment.path,
            {"id": comment_id, "up": result["up"], "down": result["down"]}).encode())
        await pipe.execute()
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

    def _check_body(self, body: str) -> tuple[str, str]:
        """The body as stored, and its HTML: rendered here once, for this check and for the
        answer (the widget shows its reader's comment at once), and stored as it is."""
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
        html = render_markdown(body)
        if not re.sub(r"<[^>]*>", "", html).strip():
            raise InvalidInput("The comment has no visible text.", details={"field": "body"})
        return body, html

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

    async def _network_hashes(self, site: str, client_ip: str | None,
                              bans: SiteBans) -> list[str]:
        """The client's network hashes a ban check compares, current salt's first: under every
        retained salt (an IP ban made from an older comment still matches) when the site has
        IP bans, else the current one alone, which the comment stores."""
        if not client_ip:
            return []
        if bans.networks:
            return await self.ip_salts.all_hashes(site, client_ip)
        return [await self.ip_salts.current_hash(site, client_ip)]

    async def _refuse_banned(self, site: str, visitor: str, client_ip: str | None,
                             bans: SiteBans) -> list[str]:
        """Forbidden if `bans` match the comment; else its network hashes."""
        networks = await self._network_hashes(site, client_ip, bans)
        if bans.matches(visitor, networks):
            raise Forbidden("You may not comment on this site.", code="banned")
        return networks

    async def _queue(self, site: SiteRecord, visitor: str, network: str, body: str,
                     event: dict[str, Any], bans_version: str) -> bool:
        """Charge the comment rate limits, refuse a duplicate, record the edit token and put
        the comment on the submission stream: one script, so one round trip, and a comment
        refused by a limit leaves no token and no duplicate mark behind. False (and nothing
        done) when the site's ban version is no longer `bans_version`."""
        window = self._settings.comment_rate_window_s
        limit = site_limit(self._settings, site, "comment_rate_limit")  # 0: no limit
        charged = [("visitor", visitor)] + ([("ip", network)] if network else [])
        rate_keys = [cache.rate_key(site.name, kind, value) for kind, value in charged] \
            if limit else []
        body_sha = hashlib.sha256(body.encode()).hexdigest()[:16]
        keys = [*rate_keys, cache.duplicate_key(site.name, event["path"], visitor, body_sha),
                cache.token_key(event["id"]), events.SUBMISSION_STREAM,
                cache.bans_version_key(site.name)]
        # Through the worker's script batcher: concurrent submissions (and the other
        # requests' scripts) share one pipeline; the script stays atomic on its own.
        outcome, retry = await self._script(self._submit_script, keys, [
            len(rate_keys), limit, window, DUPLICATE_WINDOW_S,
            max(self._settings.comment_edit_window_s, 1), event["edit_token_hash"], site.name,
            event["path"], SUBMISSION_STREAM_MAXLEN, _json(event), bans_version])
        if outcome == "bans":
            return False
        if outcome == "rate":
            raise RateLimited(f"At most {limit} comments per {window} s; try again in "
                              f"{retry} s.", int(retry))
        if outcome == "duplicate":
            raise InvalidInput("You posted this same comment here a moment ago.",
                               code="duplicate_comment", status=409)
        return True

    async def _check_parent(self, site: str, path: str, parent_id: str) -> None:
        """SQL first, even for a parent posted moments ago: a moderator may have hidden it."""
        parent = await self._run_sql(comment_store.get_comment, self._database, parent_id)
        if parent is None:
            recent = await self._redis.hgetall(cache.token_key(parent_id))
            if (recent and recent.get("site") == site and recent.get("path") == path
                    and not recent.get("deleted")):
                return  # posted moments ago, not stored yet
        if parent is None or parent.site != site or parent.path != path \
                or parent.status in ("rejected", "spam") \
                or (parent.status == "deleted" and parent.deleted_while_hidden):
            raise InvalidInput("The comment replied to does not exist on this page.",
                               code="unknown_parent", details={"field": "parent_id"})

    async def _initial_status(self, site: SiteRecord, visitor: str, body: str,
                              html: str) -> str:
        mode = site.moderation
        if mode == "all":
            return "pending"
        if mode == "links" and has_links(body, html):
            return "pending"
        if mode == "first_time" and not await self._run_sql(
                comment_store.has_approved_comment, self._database, site.name, visitor):
            return "pending"
        return "approved"

    async def _check_token(self, site: SiteRecord, comment_id: str, edit_token: str
                           ) -> dict[str, str]:
        """The comment's edit-token record (`deleted` is set once its author deleted it), if
        the token is right and the window open."""
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
        return record


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))
