"""SQL reads and writes of comments and bans. No rules here: see services/comments.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import peewee as pw

from appliance.storage.counter_sql import chunked, ensure_pages
from appliance.storage.database import write_transaction
from appliance.storage.models import Ban, Comment, Page, Site

PUBLIC_STATUSES = ("approved", "deleted")
STATUSES = ("pending", "approved", "rejected", "spam", "deleted")


@dataclass(frozen=True)
class StoredComment:
    """A comment row as the rest of the appliance sees it (with its private fields)."""

    id: str
    site: str
    path: str
    parent_id: str | None
    depth: int
    author_name: str
    author_email: str
    author_website: str
    avatar_seed: str
    body_markdown: str
    body_html: str
    status: str
    visitor_hash: str
    ip_hash: str
    notify_replies: bool
    votes_up: int
    votes_down: int
    created_at: dt.datetime
    edited_at: dt.datetime | None
    # Deleted while readers could not see it: stays out of the thread (see `thread`).
    deleted_while_hidden: bool = False

    @property
    def erased(self) -> bool:
        """Deleted, or hidden by a moderator and then deleted by its author: its text is gone
        for good (a stored comment always has some), so it can be neither edited nor
        approved."""
        return self.status == "deleted" or not self.body_html

    def as_cache_entry(self) -> dict[str, Any]:
        """What the thread cache keeps: public fields plus the author's visitor hash."""
        return {
            "id": self.id, "parent_id": self.parent_id, "depth": self.depth,
            "author_name": self.author_name, "author_website": self.author_website,
            "avatar_seed": self.avatar_seed, "html": self.body_html, "status": self.status,
            "visitor_hash": self.visitor_hash, "votes_up": self.votes_up,
            "votes_down": self.votes_down,
            "created_at": self.created_at.isoformat() + "Z",
            "edited_at": self.edited_at.isoformat() + "Z" if self.edited_at else None,
        }


def _query():
    return (Comment.select(Comment, Page.path, Site.name)
            .join(Page).join(Site))


def _stored(row: Comment) -> StoredComment:
    return StoredComment(
        id=row.id, site=row.page.site.name, path=row.page.path,
        parent_id=row.parent_id, depth=row.depth, author_name=row.author_name,
        author_email=row.author_email, author_website=row.author_website,
        avatar_seed=row.avatar_seed, body_markdown=row.body_markdown, body_html=row.body_html,
        status=row.status, visitor_hash=row.visitor_hash, ip_hash=row.ip_hash,
        notify_replies=row.notify_replies, votes_up=row.votes_up, votes_down=row.votes_down,
        created_at=row.created_at, edited_at=row.edited_at,
        deleted_while_hidden=bool(row.deleted_while_hidden))


def get_comment(database: pw.Database, comment_id: str) -> StoredComment | None:
    with database.connection_context():
        row = _query().where(Comment.id == comment_id).first()
        return _stored(row) if row else None


def get_comments(database: pw.Database, comment_ids: list[str]) -> list[StoredComment]:
    with database.connection_context():
        return [_stored(row) for row in _query().where(Comment.id.in_(comment_ids))]


def thread(database: pw.Database, site: str, path: str) -> list[StoredComment]:
    """Every comment of a page a reader might see (approved, deleted, and pending for its
    author), oldest first. A rejected or spam comment, or one deleted while hidden (nobody
    but its author and moderators ever saw it), that such a comment (not a pending one)
    replies to, directly or further up, comes as a "deleted" placeholder, emptied: without
    it, the replies under it had no place in the thread although the page's count has them."""
    shown = (Comment.status.in_(("approved", "pending"))
             | ((Comment.status == "deleted") & ~Comment.deleted_while_hidden))
    with database.connection_context():
        query = (_query().where((Site.name == site) & (Page.path == path) & shown)
                 .order_by(Comment.created_at, Comment.id))
        comments = [_stored(row) for row in query]
        hidden = _hidden_ancestors(comments, site, path)
    if hidden:
        comments = sorted(comments + hidden, key=lambda comment: (comment.created_at, comment.id))
    return comments


def _hidden_ancestors(comments: list[StoredComment], site: str, path: str
                      ) -> list[StoredComment]:
    """The hidden (rejected, spam, deleted while hidden) ancestors of `comments` not
    pending, as placeholders; usually none, found without a query."""
    by_id = {comment.id: comment for comment in comments}
    walked: set[str] = set()
    placeholders: list[StoredComment] = []
    frontier = [comment for comment in comments if comment.status != "pending"]
    while frontier:
        missing = set()
        for comment in frontier:
            parent_id = comment.parent_id
            while parent_id and parent_id in by_id and parent_id not in walked:
                walked.add(parent_id)
                parent_id = by_id[parent_id].parent_id
            if parent_id and parent_id not in by_id:
                missing.add(parent_id)
        if not missing:
            break
        found = [_stored(row) for row in _query().where(
            Comment.id.in_(sorted(missing)) & (Site.name == site) & (Page.path == path))]
        frontier = [dataclasses.replace(
            comment, status="deleted", author_name="", author_email="", author_website="",
            avatar_seed="", body_markdown="", body_html="", visitor_hash="", ip_hash="",
            notify_replies=False, votes_up=0, votes_down=0, edited_at=None)
            for comment in found]
        by_id.update((comment.id, comment) for comment in frontier)
        placeholders += frontier
    return placeholders


def approved_counts(database: pw.Database, site: str, paths: list[str]) -> dict[str, int]:
    # COUNT(*), not COUNT(id): counted from the (page_id, status, created_at) index alone.
    # COUNT(id) read every comment's row (on SQLite, about 3x the time on a page of 5,000),
    # and the listener counts a page again after every comment stored on it.
    with database.connection_context():
        query = (Comment.select(Page.path, pw.fn.COUNT(pw.SQL("*")))
                 .join(Page).join(Site)
                 .where((Site.name == site) & (Page.path.in_(paths))
                        & (Comment.status == "approved"))
                 .group_by(Page.path).tuples())
        counts = dict.fromkeys(paths, 0)
        counts.update({path: count for path, count in query})
        return counts


def list_comments(database: pw.Database, site: str | None = None, status: str | None = None,
                  limit: int = 50, offset: int = 0) -> list[StoredComment]:
    with database.connection_context():
        query = _query()
        if site:
            query = query.where(Site.name == site)
        if status:
            query = query.where(Comment.status == status)
        query = query.order_by(Comment.created_at.desc(), Comment.id).limit(limit).offset(offset)
        return [_stored(row) for row in query]


def count_by_status(database: pw.Database, site: str | None = None) -> dict[str, int]:
    with database.connection_context():
        query = Comment.select(Comment.status, pw.fn.COUNT(Comment.id)).join(Page).join(Site)
        if site:
            query = query.where(Site.name == site)
        return dict(query.group_by(Comment.status).tuples())


def has_approved_comment(database: pw.Database, site: str, visitor_hash: str) -> bool:
    with database.connection_context():
        return (Comment.select().join(Page).join(Site)
                .where((Site.name == site) & (Comment.visitor_hash == visitor_hash)
                       & (Comment.status == "approved")).exists())


def insert_comment(database: pw.Database, fields: dict[str, Any], max_depth: int) -> bool:
    """Store a new comment once (False if its id is stored already). Replies deeper than
    `max_depth` attach to the ancestor at the deepest allowed level."""
    with database.connection_context(), write_transaction(database):
        if Comment.select().where(Comment.id == fields["id"]).exists():
            return False
        page_ids = ensure_pages({(fields["site"], fields["path"])})
        page_id = page_ids.get((fields["site"], fields["path"]))
        if page_id is None:
            raise ValueError(f"unknown site {fields['site']!r}")
        parent_id, depth = _placement(fields.get("parent_id"), page_id, max_depth)
        Comment.insert(**_row(fields, page_id, parent_id, depth)).execute()
    return True


def insert_comments(database: pw.Database, comments: Sequence[dict[str, Any]],
                    max_depth: int) -> dict[str, bool]:
    """Store new comments together, as `insert_comment` does one (the listener's batches):
    one look-up of the ids stored already and one of the pages for all of them, then one
    multi-row insert per run of comments that reply to none of the run. Returns id -> stored
    now (False: stored before). ValueError for a comment of an unknown site, and then
    nothing is stored."""
    with database.connection_context(), write_transaction(database):
        stored_before = {row.id for chunk in chunked([c["id"] for c in comments])
                         for row in Comment.select(Comment.id).where(Comment.id.in_(chunk))}
        new = list({c["id"]: c for c in comments if c["id"] not in stored_before}.values())
        page_ids = ensure_pages({(c["site"], c["path"]) for c in new})
        run: list[dict[str, Any]] = []
        in_run: set[str] = set()
        for fields in new:
            page_id = page_ids.get((fields["site"], fields["path"]))
            if page_id is None:
                raise ValueError(f"unknown site {fields['site']!r}")
            if fields.get("parent_id") in in_run:  # its parent must be stored to place it
                _insert_rows(run)
                run, in_run = [], set()
            parent_id, depth = _placement(fields.get("parent_id"), page_id, max_depth)
            run.append(_row(fields, page_id, parent_id, depth))
            in_run.add(fields["id"])
        _insert_rows(run)
    return {c["id"]: c["id"] not in stored_before for c in comments}


def _insert_rows(rows: list[dict[str, Any]]) -> None:
    for chunk in chunked(rows, 100):  # SQLite allows 32,766 parameters: 100 rows of 15
        Comment.insert_many(chunk).execute()


def _row(fields: dict[str, Any], page_id: int, parent_id: str | None,
         depth: int) -> dict[str, Any]:
    return dict(
        id=fields["id"], page=page_id, parent=parent_id, depth=depth,
        author_name=fields.get("author_name", ""),
        author_email=fields.get("author_email", ""),
        author_website=fields.get("author_website", ""),
        avatar_seed=fields.get("avatar_seed", ""),
        body_markdown=fields["body_markdown"], body_html=fields["body_html"],
        status=fields["status"], visitor_hash=fields.get("visitor_hash", ""),
        ip_hash=fields.get("ip_hash", ""),
        edit_token_hash=fields.get("edit_token_hash", ""),
        notify_replies=bool(fields.get("notify_replies")),
        created_at=dt.datetime.fromisoformat(fields["created_at"]),
    )


def _placement(parent_id: str | None, page_id: int, max_depth: int) -> tuple[str | None, int]:
    if not parent_id:
        return None, 0
    parent = Comment.get_or_none((Comment.id == parent_id) & (Comment.page == page_id))
    if parent is None:
        return None, 0  # the web checked it; a parent moderated away meanwhile: top level
    while parent.depth >= max_depth - 1 and parent.parent_id:
        parent = Comment.get_by_id(parent.parent_id)
    if parent.depth >= max_depth - 1:
        return parent.parent_id, parent.depth
    return parent.id, parent.depth + 1


def update_body(database: pw.Database, comment_id: str, markdown: str, html: str,
                edited_at: dt.datetime) -> bool:
    """An author's edit; False (nothing changed) for an erased comment (`StoredComment.erased`):
    an edit must not bring back text its author or a moderator removed."""
    with database.connection_context():
        return (Comment.update(body_markdown=markdown, body_html=html, edited_at=edited_at)
                .where((Comment.id == comment_id) & (Comment.status != "deleted")
                       & (Comment.body_html != ""))
                .execute()) > 0


def erase_body(database: pw.Database, comment_id: str) -> None:
    """Forget a comment's text and leave its status as it is."""
    with database.connection_context():
        Comment.update(body_markdown="", body_html="").where(Comment.id == comment_id).execute()


def set_status(database: pw.Database, comment_ids: list[str], status: str) -> int:
    """Change the status; a deleted comment loses its body (the thread keeps its place). One
    deleted while readers could not see it (not approved) is marked `deleted_while_hidden`:
    readers never see it but as a placeholder above replies they see."""
    values: dict[Any, Any] = {Comment.status: status}
    if status == "deleted":
        values.update({Comment.body_markdown: "", Comment.body_html: "",
                       Comment.deleted_while_hidden: pw.Case(None, [
                           (Comment.status == "deleted", Comment.deleted_while_hidden),
                           (Comment.status == "approved", False)], True)})
    with database.connection_context():
        return Comment.update(values).where(Comment.id.in_(comment_ids)).execute()


@dataclass(frozen=True)
class StoredBan:
    id: int
    site: str
    kind: str  # visitor | ip
    value_hash: str
    reason: str
    created_at: dt.datetime


def _bans():
    return Ban.select(Ban, Site.name).join(Site)


def _stored_ban(row: Ban) -> StoredBan:
    return StoredBan(id=row.id, site=row.site.name, kind=row.kind, value_hash=row.value_hash,
                     reason=row.reason, created_at=row.created_at)


def list_bans(database: pw.Database, site: str | None = None, limit: int | None = None,
              offset: int = 0) -> list[StoredBan]:
    """Bans, newest first (`limit` None: all of them)."""
    with database.connection_context():
        query = _bans()
        if site:
            query = query.where(Site.name == site)
        query = query.order_by(Ban.created_at.desc(), Ban.id.desc()).limit(limit).offset(offset)
        return [_stored_ban(row) for row in query]


def get_ban(database: pw.Database, ban_id: int) -> StoredBan | None:
    with database.connection_context():
        row = _bans().where(Ban.id == ban_id).first()
        return _stored_ban(row) if row else None


def matching_bans(database: pw.Database, site: str, visitor_hash: str,
                  ip_hash: str) -> list[StoredBan]:
    """The site's bans of this visitor hash or this network hash (either may be "")."""
    matches = []
    if visitor_hash:
        matches.append((Ban.kind == "visitor") & (Ban.value_hash == visitor_hash))
    if ip_hash:
        matches.append((Ban.kind == "ip") & (Ban.value_hash == ip_hash))
    if not matches:
        return []
    either = matches[0] if len(matches) == 1 else matches[0] | matches[1]
    with database.connection_context():
        return [_stored_ban(row) for row in _bans().where((Site.name == site) & either)
                .order_by(Ban.id)]


def delete_bans(database: pw.Database, ban_ids: list[int]) -> int:
    with database.connection_context():
        return Ban.delete().where(Ban.id.in_(ban_ids)).execute() if ban_ids else 0


def add_ban(database: pw.Database, site: str, kind: str, value_hash: str, reason: str) -> bool:
    with database.connection_context(), write_transaction(database):
        site_row = Site.get_or_none(Site.name == site)
        if site_row is None:
            raise ValueError(f"unknown site {site!r}")
        inserted = (Ban.insert(site=site_row, kind=kind, value_hash=value_hash, reason=reason)
                    .on_conflict_ignore().execute())
        return bool(inserted)


def is_banned(database: pw.Database, site: str, visitor_hash: str,
              ip_hashes: str | Sequence[str]) -> bool:
    """`ip_hashes`: the client's network hash, or its hashes under every retained salt."""
    networks = [ip_hashes] if isinstance(ip_hashes, str) else list(ip_hashes)
    networks = [network for network in networks if network]
    banned = (Ban.kind == "visitor") & (Ban.value_hash == visitor_hash)
    if networks:
        banned |= (Ban.kind == "ip") & Ban.value_hash.in_(networks)
    with database.connection_context():
        return Ban.select().join(Site).where((Site.name == site) & banned).exists()


def site_bans(database: pw.Database, site: str) -> list[tuple[str, str]]:
    """Every ban of the site as (kind, value hash): what a web worker keeps at hand."""
    with database.connection_context():
        return list(Ban.select(Ban.kind, Ban.value_hash).join(Site)
                    .where(Site.name == site).tuples())


def sites_with_ip_bans_until(database: pw.Database, until: dt.datetime) -> list[str]:
    """The sites with IP bans made at or before `until` (naive UTC)."""
    with database.connection_context():
        return [name for (name,) in Ban.select(Site.name).join(Site)
                .where((Ban.kind == "ip") & (Ban.created_at <= until)).distinct().tuples()]
