"""Listing and lifting comment bans, so that a mistaken ban is not for ever.

Bans are made from a comment (`moderation.ban_author`): by its author's visitor hash and, as a
rule, its network hash. They are lifted the same way, every ban matching a comment's author, or
one at a time by the id a listing shows (the only way once no comment of the author is left,
or a `visitor erase` took the hashes off their comments).
"""

from __future__ import annotations

import re
from typing import Any

import peewee as pw
import redis

from appliance.errors import UnknownBan, UnknownComment
from appliance.services.comments import COMMENT_ID
from appliance.storage import comment_cache, comment_store
from appliance.storage.comment_store import StoredBan

# As `ban_author` reports them: an "ip" ban is by the hash of a network (an IPv4 address or
# an IPv6 /64), not of one address.
KIND_NAMES = {"visitor": "visitor", "ip": "network"}
_BAN_ID = re.compile(r"[1-9][0-9]{0,17}")  # within a SQL bigint, whatever the database


def describe(ban: StoredBan) -> dict[str, Any]:
    """A ban as the admin API and `platformctl comments bans --json` show it."""
    return {"id": ban.id, "site": ban.site, "kind": KIND_NAMES.get(ban.kind, ban.kind),
            "value_hash": ban.value_hash, "reason": ban.reason,
            "created_at": ban.created_at.isoformat() + "Z"}


def ban_id_from(text: str) -> int:
    """A ban id from a URL or the command line; anything else is no ban at all."""
    if not _BAN_ID.fullmatch(text):
        raise UnknownBan(f"No ban has id {text[:40]!r}.")
    return int(text)


def author_bans(database: pw.Database, comment_id: str, network: bool = True,
                site: str | None = None) -> list[StoredBan]:
    """The bans of the site of comment `comment_id` that match its author: by visitor hash,
    and with `network` by the comment's network hash. `site`: the comment must be one of it."""
    # A malformed id never reaches SQL (PostgreSQL refuses a NUL in a string).
    comment = (comment_store.get_comment(database, comment_id)
               if COMMENT_ID.fullmatch(comment_id) else None)
    if comment is None or (site is not None and comment.site != site):
        where = f" of site {site!r}" if site is not None else ""
        raise UnknownComment(f"No comment{where} has id {comment_id[:40]!r}.")
    return comment_store.matching_bans(database, comment.site, comment.visitor_hash,
                                       comment.ip_hash if network else "")


def lift_author_bans(client: redis.Redis, database: pw.Database, comment_id: str,
                     network: bool = True, site: str | None = None) -> list[StoredBan]:
    """Lift the bans `author_bans` finds; UnknownBan if there is none."""
    bans = author_bans(database, comment_id, network, site)
    if not bans:
        raise UnknownBan(f"No ban matches the author of comment {comment_id}"
                         + ("." if network else " by their visitor id."))
    comment_store.delete_bans(database, [ban.id for ban in bans])
    # Committed: the web workers' copies of the site's bans are outdated from now on.
    comment_cache.bans_changed(client, bans[0].site)
    return bans


def lift_ban(client: redis.Redis, database: pw.Database, ban_id: int,
             site: str | None = None) -> StoredBan:
    """Lift one ban by its id; UnknownBan if no ban (of `site`, when given) has it."""
    ban = comment_store.get_ban(database, ban_id) if 0 < ban_id < 2 ** 63 else None
    if ban is None or (site is not None and ban.site != site):
        where = f" of site {site!r}" if site is not None else ""
        raise UnknownBan(f"No ban{where} has id {ban_id}.")
    comment_store.delete_bans(database, [ban.id])
    comment_cache.bans_changed(client, ban.site)
    return ban
